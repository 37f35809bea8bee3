"""Tiny random Hugging Face models built at test time, where real weights cannot be fetched.

Nothing here downloads anything: the tokenizers are trained on a few sentences with the
``tokenizers`` library and the models are randomly initialised with a fixed seed, so tests drive
the real loading and inference code paths (``from_pretrained``, fast tokenizers with offsets,
batched forward passes, attentions) in well under a second per model. Their outputs carry no
meaning: assert on shapes, order, shares and error handling, never on which words survive.

``torch``, ``transformers`` and ``tokenizers`` are imported inside the builders, so importing this
module costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

#: Sentences the tiny tokenizers learn their vocabularies from (pass your own corpus for others).
CORPUS: tuple[str, ...] = (
    "Hi Melanie! How was your weekend? I went hiking with my dog Rex near the lake.",
    "That sounds lovely. I spent Saturday painting a sunset and Sunday at the pottery class.",
    "My sister moved to Lisbon last May and started a new job as a nurse at the hospital.",
    "We adopted a cat named Pixel in 2021; she sleeps on the keyboard all day long.",
    "The stock market fell sharply on Monday after the central bank raised interest rates.",
    "I am learning the violin, practising scales for thirty minutes every evening.",
    "Our team finished the quarterly report, and the meeting moved to Thursday at 3 pm.",
    "Caroline said the adoption agency called back about the interview next week.",
    "Did you watch the football match? The keeper saved two penalties in the final.",
    "For dinner we cooked pasta with fresh basil, garlic, tomatoes and parmesan cheese.",
    "The weather in Oslo was cold and rainy, so we visited the museum and the library.",
    "Remember to buy milk, eggs, bread, apples and coffee on the way home, please.",
    "Question: what did you do yesterday? Answer: I read a book about ancient Rome.",
    "We're going camping in July; don't forget the tent, the stove and the maps!",
    "Numbers like 42, 3.14, 1999 and 2024-05-08 should tokenize into pieces too.",
)


def _corpus(extra: Iterable[str] | None) -> list[str]:
    texts = list(CORPUS)
    if extra is not None:
        texts.extend(extra)
    return texts


def build_tiny_bert_token_classifier(
    folder: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 600,
    hidden_size: int = 32,
    num_layers: int = 4,
    num_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """Save a random 2-label ``BertForTokenClassification`` and WordPiece tokenizer to ``folder``.

    This is the shape of an LLMLingua-2 checkpoint (label 1 = keep the token). Name the folder
    ``...bert-base-multilingual-cased...`` when the stock ``llmlingua`` package must load it: it
    picks its word-splitting rule from the folder name.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast

    folder = Path(folder)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    tok.train_from_iterator(_corpus(corpus), trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_position_embeddings,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or hidden_size * 2,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    config.num_labels = 2  # drop / keep
    model = BertForTokenClassification(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_gpt2(
    folder: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 700,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int | None = None,
    n_positions: int = 256,
    seed: int = 0,
) -> Path:
    """Save a random ``GPT2LMHeadModel`` with a byte-level BPE tokenizer to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    eos = "<|endoftext|>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(corpus), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=eos,
        eos_token=eos,
        unk_token=eos,
        model_max_length=n_positions,
    )
    torch.manual_seed(seed)
    eos_id = tok.token_to_id(eos)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=n_positions,
        n_embd=hidden_size,
        n_layer=num_layers,
        n_head=num_heads,
        n_inner=intermediate_size,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    model = GPT2LMHeadModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_clip(
    folder: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 400,
    hidden_size: int = 32,
    projection_dim: int = 16,
    image_size: int = 16,
    seed: int = 0,
) -> Path:
    """Save a random ``CLIPModel`` with its processor (a byte-level BPE tokenizer and an image
    processor) to ``folder``: the layout of a CLIP checkpoint, which sentence-transformers loads
    as one model for texts and images (vectors of ``projection_dim``)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPVisionConfig,
    )

    # a fast tokenizer class the transformers stubs do not declare
    clip_tokenizer = importlib.import_module("transformers").CLIPTokenizerFast

    folder = Path(folder)
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, 0), (eos, 1)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[bos, eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(corpus), trainer)
    tokenizer = clip_tokenizer(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        unk_token=eos,
        pad_token=eos,
        model_max_length=32,
    )
    images = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=CLIPTextConfig(
            vocab_size=tok.get_vocab_size(),
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
        ).to_dict(),
        vision_config=CLIPVisionConfig(
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=image_size // 2,
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
        ).to_dict(),
        projection_dim=projection_dim,
    )
    model = CLIPModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder
