"""Image captions from the extraction call: an openai memory manager on the loopback server.

A message that carries an image shows ``[image i1]`` in the extraction prompt, and the same
call's answer may caption it (``"images": [{"image": "i1", "caption": ...}]``); the image's
entry then has the model's caption, found by the model's words. An answer without a usable
caption leaves the caption the entry got from the surrounding text.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("lightmem_openai", reason="the openai plugin is not installed")

import lightmem_core.builtin as builtin
from lightmem_core import LightMemory
from lightmem_core.testing import fresh_host
from lightmem_core.testing.openai_server import Fault
from lightmem_core.testing.reference import (
    ReferencePlugin,
    colour_png,
    data_uri,
    reference_config,
)

LINE = re.compile(r'^(\d+) (.*?): ("(?:[^"\\]|\\.)*")((?: \[image i\d+\])*)$')
SAID = "Look at this one from Saturday!"
CAPTION = "Biscuit the border collie splashing through the waves at Nazare"


def answer(captions=lambda image: CAPTION, images=True):
    """A model that writes one fact per message and ``captions(image)`` per image marker."""

    def respond(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        facts, written = [], []
        for line in prompt.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            text = json.loads(m.group(3)) or "an image"
            facts.append(
                {"text": f"Maya said: {text}", "sources": [int(m.group(1))], "importance": 0.8}
            )
            for image in re.findall(r"\[image (i\d+)\]", m.group(4)):
                written.append({"image": image, "caption": captions(image)})
        value: dict = {"facts": facts}
        if images:
            value["images"] = written
        return json.dumps(value)

    return respond


def host():
    import lightmem_openai.plugin as openai_plugin

    return fresh_host(builtin, ReferencePlugin(), openai_plugin)


def config(tmp_path, server):
    return reference_config(
        tmp_path / "mem",
        memory_manager={
            "model_name": "openai",
            "configs": {"api_key": "sk-test", "openai_base_url": server.base_url},
        },
        multimodal_embedder={"model_name": "colours"},
        metadata_generate=False,
        text_summary=False,
        topic_segment=False,
        update=None,
    )


def add_photo(mem, text=SAID):
    parts = [{"type": "text", "text": text}] if text else []
    parts.append({"type": "image_url", "image_url": {"url": data_uri(colour_png("red"))}})
    mem.add_memory(
        [
            {
                "role": "user",
                "content": "I went to the coast with the dog.",
                "time_stamp": "2024-06-01T10:00",
            },
            {"role": "user", "content": parts, "time_stamp": "2024-06-01T10:01"},
        ],
        user_id="maya",
        force_extract=True,
    )


def images_of(mem):
    return [e for e in mem.get_all(user_id="maya") if e.category == "image"]


def test_the_caption_is_the_models_and_its_words_find_the_image(tmp_path, openai_server):
    openai_server.responder = answer()
    with LightMemory(config(tmp_path, openai_server), host=host()) as mem:
        add_photo(mem)
        (request,) = openai_server.chat_requests  # one call: the facts and the caption
        prompt = request.json["messages"][-1]["content"]
        assert f"2 user: {json.dumps(SAID)} [image i1]" in prompt.splitlines()
        assert '"images": [{"image": "i1", "caption": "..."}]' in prompt
        schema = request.json["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["images"]["items"]["properties"]["image"]["enum"] == ["i1"]
        (image,) = images_of(mem)
        assert image.memory == CAPTION
        assert [h["action"] for h in mem.history(image.id)] == ["add", "update"]
        assert mem.history(image.id)[0]["new_memory"] == SAID
        # only the model's words: the photo itself, not the facts about what was said
        hits = mem.search("border collie splashing waves", limit=3, user_id="maya")
        assert hits[0].entry.id == image.id
        assert all(
            "collie" not in e.memory for e in mem.get_all(user_id="maya") if e.id != image.id
        )


@pytest.mark.parametrize(
    "respond",
    [
        answer(images=False),  # no "images" at all
        answer(captions=lambda image: "   "),  # an empty caption
        answer(captions=lambda image: None),  # not a string
        lambda body: json.dumps(
            {"facts": [], "images": [{"image": "i7", "caption": CAPTION}]}  # an unknown image
        ),
    ],
    ids=["no-images", "empty", "not-a-string", "unknown-image"],
)
def test_an_answer_without_a_usable_caption_keeps_the_surrounding_text(
    tmp_path, openai_server, respond
):
    openai_server.responder = respond
    with LightMemory(config(tmp_path, openai_server), host=host()) as mem:
        add_photo(mem)
        (image,) = images_of(mem)
        assert image.memory == SAID
        assert [h["action"] for h in mem.history(image.id)] == ["add"]


def test_a_cut_answer_never_gives_half_a_caption(tmp_path, openai_server):
    openai_server.responder = answer()
    openai_server.queue(Fault.cut(0.9))  # the first answer stops inside the caption
    with LightMemory(config(tmp_path, openai_server), host=host()) as mem:
        add_photo(mem, text="")  # an image alone: its caption is the message before
        (image,) = images_of(mem)
        assert image.memory == CAPTION
        assert len(openai_server.chat_requests) >= 2


def test_without_image_memory_the_prompt_has_no_image_instruction(tmp_path, openai_server):
    openai_server.responder = answer(images=False)
    cfg = config(tmp_path, openai_server)
    del cfg["multimodal_embedder"]
    with LightMemory(cfg, host=host()) as mem:
        mem.add_memory([{"role": "user", "content": "I like figs."}], force_extract=True)
        (request,) = openai_server.chat_requests
        assert "image" not in request.json["messages"][-1]["content"]
        assert (
            "images" not in request.json["response_format"]["json_schema"]["schema"]["properties"]
        )


def test_the_update_pass_leaves_images_alone(tmp_path, openai_server):
    said = "I went to the coast with the dog."
    same = f"Maya said: {said}"  # the first fact's text: the caption repeats it word for word
    extract = answer(captions=lambda image: same)

    def respond(body: dict) -> str:
        schema = body["response_format"]["json_schema"]["schema"]
        if schema.get("title") != "lightmem_update_decisions":
            return extract(body)
        prompt = body["messages"][-1]["content"]
        checks = re.findall(r"^(\d+) <- (\d+)", prompt, re.M)
        return json.dumps(
            {
                "decisions": [
                    {"id": int(old), "action": "delete", "new_memory": "", "by": int(new)}
                    for old, new in checks
                ]
            }
        )

    openai_server.responder = respond
    cfg = config(tmp_path, openai_server) | {"update": "offline"}
    with LightMemory(cfg, host=host()) as mem:
        add_photo(mem)
        mem.add_memory(  # later, the same fact again: the older one is superseded
            [{"role": "user", "content": said, "time_stamp": "2024-06-01T10:05"}],
            user_id="maya",
            force_extract=True,
        )
        (image,) = images_of(mem)
        assert image.memory == same
        assert mem.construct_update_queue_all_entries() >= 1
        changes = mem.offline_update_all_entries(score_threshold=0.5)
        assert changes and all(c.entry_id != image.id for c in changes)
        assert {c.action for c in changes} == {"supersede"}
        assert mem.get(image.id).status == "active" and mem.get(image.id).memory == same
