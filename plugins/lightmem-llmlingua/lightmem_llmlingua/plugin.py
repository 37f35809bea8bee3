"""Registers ``llmlingua-2`` as pre_compressor and topic_segmenter; imports only attrs and stdlib.

torch, transformers and llmlingua are imported by the factories' modules, and the model weights
load on the first ``compress`` / ``segment`` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl

from .options import LLMLingua2Options, SegmenterOptions

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .compressor import LLMLingua2Compressor
    from .segmenter import LLMLingua2Segmenter


def build_compressor(options: LLMLingua2Options, context: BackendContext) -> LLMLingua2Compressor:
    """The pre_compressor factory: checks the model folder now, loads the weights on first use."""
    from .compressor import LLMLingua2Compressor
    from .model import SHARED_COMPRESSOR, get_handle

    limit = options.llmlingua2_config.max_force_token
    if len(options.compress_config.force_tokens) > limit:
        raise ValueError(
            f"compress_config.force_tokens: {len(options.compress_config.force_tokens)} tokens "
            f"given, more than llmlingua2_config.max_force_token ({limit}); raise the limit"
        )
    llm = options.llmlingua_config
    handle = get_handle(
        context,
        model_name=llm.model_name,
        where="pre_compressor.configs.llmlingua_config.model_name",
        device=llm.device_map,
        torch_dtype=llm.torch_dtype,
        token_classifier=True,
        stock=options.engine == "llmlingua",
        max_batch_size=options.llmlingua2_config.max_batch_size,
        max_force_token=limit,
    )
    if context.precomp_topic_shared:
        context.shared.setdefault(SHARED_COMPRESSOR, handle)
    return LLMLingua2Compressor(options, handle)


def build_segmenter(options: SegmenterOptions, context: BackendContext) -> LLMLingua2Segmenter:
    """The topic_segmenter factory: its own model, or the compressor's (precomp_topic_shared)."""
    from .model import SHARED_COMPRESSOR, get_handle
    from .segmenter import LLMLingua2Segmenter

    if options.model_name is not None:
        handle = get_handle(
            context,
            model_name=options.model_name,
            where="topic_segmenter.configs.model_name",
            device=options.device_map,
            torch_dtype=options.torch_dtype,
            token_classifier=False,
        )
    elif not context.precomp_topic_shared:
        raise ValueError(
            "topic_segmenter llmlingua-2: configs.model_name is not set; point it at a local "
            "LLMLingua-2 (or other BERT-style encoder) folder, or set precomp_topic_shared: true "
            "with pre_compressor llmlingua-2 to reuse the compressor's model"
        )
    else:
        handle = context.shared.get(SHARED_COMPRESSOR)
        if handle is None:
            context.get_backend("pre_compressor")  # builds it, which shares its model
            handle = context.shared.get(SHARED_COMPRESSOR)
        if handle is None:
            raise ValueError(
                "topic_segmenter llmlingua-2: precomp_topic_shared is true but no llmlingua-2 "
                "pre_compressor is configured first to share its model; configure "
                "pre_compressor llmlingua-2 (with pre_compress: true), or set "
                "topic_segmenter.configs.model_name"
            )
    embedder = context.get_backend if options.use_embeddings else None
    return LLMLingua2Segmenter(options, handle, get_backend=embedder)


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.pre_compressor(
        "llmlingua-2",
        build_compressor,
        options=LLMLingua2Options,
        description="LLMLingua-2 token classifier keeps the informative words (local model).",
    )
    registrar.topic_segmenter(
        "llmlingua-2",
        build_segmenter,
        options=SegmenterOptions,
        description="Topic shifts from LLMLingua-2 encoder attention, checked by embeddings.",
    )
