"""Image memory end to end on the reference backends and the reference multimodal embedder.

The reference embedder's vectors are known (one axis per colour name; an image is the axis of
its colour), so a text query naming a colour must find the image of that colour first.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from lightmem_hookspecs import hookimpl

from lightmem_core import LightMemory
from lightmem_core.images import ImageInputError
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import (
    ColourEmbedder,
    ReferencePlugin,
    colour_png,
    data_uri,
    reference_config,
)


def image_message(text: str | None, url: str, **extra) -> dict:
    parts = [{"type": "text", "text": text}] if text is not None else []
    parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": "user", "content": parts, "time_stamp": "2024-06-01T10:00", **extra}


@pytest.fixture
def config(tmp_path):
    return reference_config(tmp_path / "mem", multimodal_embedder={"model_name": "colours"})


def test_an_image_is_an_entry_found_by_a_text_query_and_deleted_with_its_file(config, ref_host):
    with LightMemory(config, host=ref_host) as mem:
        mem.add(
            [
                image_message("The picture of my dog at the beach", data_uri(colour_png("red"))),
                image_message("Our kitchen after the renovation", data_uri(colour_png("blue"))),
                {"role": "user", "content": "I like green tea with honey."},
            ],
            user_id="maya",
        )
        hits = mem.search("the red photo", limit=5, user_id="maya")
        assert hits[0].ranks["multimodal"] == 1
        top = hits[0].entry
        assert top.category == "image"
        assert top.memory == "The picture of my dog at the beach"
        image = top.metadata["image"]
        assert image["media_type"] == "image/png" and image["storage"] == "copy"
        assert (image["width"], image["height"]) == (8, 8)
        with open(image["path"], "rb") as f:
            assert f.read() == colour_png("red")
        assert "multimodal" in hits[0].scores
        assert top.scope.user_id == "maya" and len(top.source_message_ids) == 1
        hits = mem.search("something blue", limit=5, user_id="maya")
        (blue,) = [h.entry for h in hits if h.ranks.get("multimodal") == 1]
        assert blue.memory == "Our kitchen after the renovation"
        # get and history cover images
        assert mem.get(top.id) == top
        assert [h["action"] for h in mem.history(top.id)] == ["add"]
        # another scope sees none of them
        assert all(h.entry.scope.user_id != "maya" for h in mem.search("red", user_id="ana"))
        mem.delete(top.id)
        assert mem.get(top.id).status == "deleted"
        assert not _exists(image["path"])
        assert all(h.entry.id != top.id for h in mem.search("the red photo", user_id="maya"))
        assert [h["action"] for h in mem.history(top.id)] == ["add", "delete"]


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def test_the_same_image_twice_is_stored_once_and_kept_while_an_entry_uses_it(config, ref_host):
    url = data_uri(colour_png("green"))
    with LightMemory(config, host=ref_host) as mem:
        mem.add([image_message("first", url), image_message("second", url)], user_id="u")
        mem.add([image_message("first", url)], user_id="u")  # re-sent: nothing new
        entries = [e for e in mem.get_all(user_id="u") if e.category == "image"]
        assert sorted(e.memory for e in entries) == ["first", "second"]
        paths = {e.metadata["image"]["path"] for e in entries}
        assert len(paths) == 1
        mem.delete(entries[0].id)
        assert _exists(paths.pop())  # the other entry still uses the file


def test_a_local_file_under_an_allowed_root_by_copy_or_reference(tmp_path, ref_host):
    root = tmp_path / "photos"
    root.mkdir()
    photo = root / "beach.png"
    photo.write_bytes(colour_png("yellow"))
    for storage in ("copy", "reference"):
        config = reference_config(
            tmp_path / f"mem-{storage}",
            multimodal_embedder={"model_name": "colours"},
            images={"allowed_roots": [str(root)], "storage": storage},
        )
        with LightMemory(config, host=ref_host) as mem:
            mem.add([image_message(None, f"file://{photo}")])
            (hit,) = [h for h in mem.search("yellow", limit=3) if h.entry.category == "image"]
            image = hit.entry.metadata["image"]
            assert image["storage"] == storage
            assert (image["path"] == str(photo)) is (storage == "reference")
            assert hit.entry.memory == "an image"  # no text anywhere: a plain caption
            mem.delete(hit.entry.id)
            assert photo.is_file()  # the caller's file is never removed


def _png_bytes() -> bytes:
    return colour_png("red", size=64)


def _tiff() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        (lambda root: data_uri(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), r"not an image|corrupt"),
        (lambda root: data_uri(_png_bytes()[:-60]), r"corrupt or truncated"),
        (lambda root: data_uri(b"just some text, no image"), r"not an image"),
        (lambda root: data_uri(_tiff(), "image/tiff"), r"unsupported image format TIFF"),
        (lambda root: data_uri(b"\x00" * 3000), r"over images\.max_bytes \(2000 bytes\)"),
        (lambda root: "data:image/png," + "abc", r"not base64"),
        (lambda root: "data:image/png;base64,%%%not-base64%%%", r"not valid base64"),
        (lambda root: "/etc/hostname", r"outside images\.allowed_roots"),
        (lambda root: str(root / ".." / "outside.png"), r"outside images\.allowed_roots"),
        (lambda root: "https://example.com/cat.png", r"downloads nothing"),
    ],
)
def test_bad_images_are_typed_errors_naming_the_part_and_nothing_is_stored(
    tmp_path, ref_host, url, match
):
    root = tmp_path / "photos"
    root.mkdir()
    (tmp_path / "outside.png").write_bytes(colour_png("red"))
    config = reference_config(
        tmp_path / "mem",
        multimodal_embedder={"model_name": "colours"},
        images={"allowed_roots": [str(root)], "max_bytes": 2000},
    )
    with LightMemory(config, host=ref_host) as mem:
        messages = [
            {"role": "user", "content": "a message before"},
            image_message("my picture", url(root)),
        ]
        with pytest.raises(ImageInputError, match=match) as exc:
            mem.add(messages)
        assert "messages[1].content[1]" in str(exc.value)
        assert mem.get_all() == []
        assert mem.store.journal() == []
        images = tmp_path / "mem" / "images"
        assert not any(images.glob("*.png")) if images.exists() else True


def test_image_parts_without_a_multimodal_embedder_are_refused(tmp_path, ref_host):
    with LightMemory(reference_config(tmp_path / "mem"), host=ref_host) as mem:
        with pytest.raises(ImageInputError, match=r"messages\[0\]\.content\[1\]: .*multimodal"):
            mem.add([image_message("x", data_uri(colour_png("red")))])
        assert mem.get_all() == []


def test_text_parts_alone_are_accepted_as_text(tmp_path, ref_host):
    with LightMemory(reference_config(tmp_path / "mem"), host=ref_host) as mem:
        mem.add([{"role": "user", "content": [{"type": "text", "text": "I love figs."}]}])
        assert [e.memory for e in mem.get_all()] == ["I love figs."]


def test_the_multimodal_retriever_joins_the_chain_with_its_weight(config, ref_host):
    config["hybrid_weights"] = {"multimodal": 0.5}
    with LightMemory(config, host=ref_host) as mem:
        chain = mem.stats()["chains"]
        text = str(chain)
        assert "multimodal" in text and "0.5" in text
    base64.b64decode(data_uri(colour_png("red")).split(",", 1)[1])


def test_erasing_a_scope_removes_its_images_and_keeps_the_others(config, ref_host):
    with LightMemory(config, host=ref_host) as mem:
        mem.add([image_message("maya's red", data_uri(colour_png("red")))], user_id="maya")
        mem.add([image_message("ana's blue", data_uri(colour_png("blue")))], user_id="ana")
        paths = {
            e.scope.user_id: e.metadata["image"]["path"]
            for e in mem.get_all()
            if e.category == "image"
        }
        mem.erase(user_id="maya")
        assert not _exists(paths["maya"]) and _exists(paths["ana"])
        assert [h.entry.memory for h in mem.search("red", user_id="maya")] == []
        (hit,) = [h for h in mem.search("blue", user_id="ana") if h.entry.category == "image"]
        assert hit.entry.memory == "ana's blue"


def test_the_image_index_filters_as_search_filter_matches_says(tmp_path):
    import datetime as dt

    from lightmem_hookspecs import MemoryEntry, Scope, SearchFilter, entry_payload

    from lightmem_core.images import ImageIndex
    from lightmem_core.testing.reference import ColourEmbedder

    index = ImageIndex(ColourEmbedder(), tmp_path / "images")
    users = ["maya", "ana", "maya", None, "maya"]
    colours = ["red", "red", "blue", "red", "green"]
    entries = [
        MemoryEntry(
            id=f"img-{k}",
            memory=f"image {k}",
            scope=Scope(user_id=user),
            speaker_name="Maya" if k % 2 else None,
            topic_id=k % 3 if k != 1 else None,
            time_stamp=dt.datetime(2024, 6, 1 + k, tzinfo=dt.UTC) if k != 3 else None,
            category="image",
            metadata={"image": {"sha256": str(k), "path": "-", "storage": "reference"}},
        )
        for k, user in enumerate(users)
    ]
    index.add_images([(e, colour_png(c)) for e, c in zip(entries, colours, strict=True)])
    june3 = dt.datetime(2024, 6, 3, tzinfo=dt.UTC)
    filters = [
        None,
        SearchFilter(),
        SearchFilter(user_id="maya"),
        SearchFilter(user_id="nobody"),
        SearchFilter(speaker="Maya"),
        SearchFilter(topic_id=0),
        SearchFilter(time_gte=june3),
        SearchFilter(time_lt=june3, user_id="maya"),
        SearchFilter(time_gt=june3),
        SearchFilter(time_lte=june3),
        SearchFilter(exclude_ids={"img-0", "img-9"}),
    ]
    payloads = {e.id: entry_payload(e) for e in entries}
    reds = {e.id for e, c in zip(entries, colours, strict=True) if c == "red"}
    for f in filters:
        found = [i for i, _ in index.search("a red one", limit=10, filter=f)]
        assert set(found) == {i for i, p in payloads.items() if f is None or f.matches(i, p)}, f
        first = [i for i in found if i in reds]
        assert found[: len(first)] == first  # the red ones first
    index.close()


# -- export and import --------------------------------------------------------------------


def _sha(path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def image_export(tmp_path, ref_host):
    """An export of a memory with a copied image (red), a referenced one (yellow), a deleted
    image and a text message."""
    from lightmem_core.transfer import export_memory

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "sun.png").write_bytes(colour_png("yellow"))
    config = reference_config(
        tmp_path / "a",
        multimodal_embedder={"model_name": "colours"},
        images={"allowed_roots": [str(photos)], "storage": "reference"},
    )
    with LightMemory(config, host=ref_host) as mem:
        mem.add(
            [
                image_message("The picture of my dog at the beach", data_uri(colour_png("red"))),
                image_message("Sunset from the balcony", f"file://{photos / 'sun.png'}"),
                image_message("An old kitchen photo", data_uri(colour_png("blue"))),
                {"role": "user", "content": "I like green tea with honey."},
            ],
            user_id="maya",
        )
        images = {e.memory: e for e in mem.get_all(user_id="maya") if e.category == "image"}
        mem.delete(images["An old kitchen photo"].id)
        assert export_memory(mem, tmp_path / "memory.jsonl").entries == 7  # + 4 message entries
        found = {
            q: [h.entry.id for h in mem.search(q, limit=3, user_id="maya")]
            for q in ("the red photo", "something yellow")
        }
    return tmp_path / "memory.jsonl", images, found, photos


def _target(tmp_path, photos, name="b"):
    return reference_config(
        tmp_path / name,
        multimodal_embedder={"model_name": "colours"},
        images={"allowed_roots": [str(photos)]},
    )


def _rewrite(path, change):
    lines = path.read_text().splitlines()
    lines = change(lines)
    path.write_text("\n".join(lines) + "\n")


def test_images_round_trip_through_export_and_import(tmp_path, ref_host, image_export):
    from lightmem_core.transfer import import_memory

    path, before, found, photos = image_export
    lines = path.read_text().splitlines()
    red = before["The picture of my dog at the beach"]
    (red_line,) = [json.loads(x) for x in lines if red.id in x and '"type":"entry"' in x]
    assert base64.b64decode(red_line["image"]["data"]) == colour_png("red")
    with LightMemory(_target(tmp_path, photos), host=ref_host) as mem:
        report = import_memory(mem, path)
        assert report.entries_added == 7
        assert (report.images_added, report.images_reembedded) == (2, False)
        for query, ids in found.items():  # the same hits, images first
            assert [h.entry.id for h in mem.search(query, limit=3, user_id="maya")] == ids
        hits = mem.search("the red photo", limit=3, user_id="maya", retrievers=["multimodal"])
        assert hits[0].entry.id == red.id
        image = hits[0].entry.metadata["image"]
        assert image["path"].startswith(str(tmp_path / "b" / "images"))  # kept in the target
        assert (
            _sha(image["path"])
            == red.metadata["image"]["sha256"]
            == _sha(red.metadata["image"]["path"])
        )
        sun = mem.get(before["Sunset from the balcony"].id)
        assert sun.metadata["image"]["path"] == str(photos / "sun.png")  # still a reference
        assert sun.metadata["image"]["storage"] == "reference"
        deleted = mem.get(before["An old kitchen photo"].id)
        assert deleted.status == "deleted"
        assert [h["action"] for h in mem.history(deleted.id)] == ["add", "delete"]
        assert import_memory(mem, path).entries_added == 0  # idempotent
        mem.delete(red.id)  # the imported copy goes with its entry
        assert not _exists(image["path"])


def _zero_vectors(lines, model=None):
    out = []
    for line in lines:
        obj = json.loads(line)
        if obj.get("format") and model is not None:
            obj["multimodal_embedder"]["model_name"] = model
        if "image" in obj:
            size = len(base64.b64decode(obj["image"]["vector"]))
            obj["image"]["vector"] = base64.b64encode(b"\0" * size).decode()
        out.append(json.dumps(obj))
    return out


@pytest.mark.parametrize("other_model", [False, True])
def test_image_vectors_are_taken_or_made_again_by_the_multimodal_fingerprint(
    tmp_path, ref_host, image_export, other_model
):
    from lightmem_core.transfer import import_memory

    path, before, _, photos = image_export
    # zero vectors in the file: taken as they are (the same embedder made them), they match
    # nothing; made again (the header names another embedder), the red image is found
    _rewrite(path, lambda lines: _zero_vectors(lines, "another-clip" if other_model else None))
    with LightMemory(_target(tmp_path, photos), host=ref_host) as mem:
        assert import_memory(mem, path).images_reembedded is other_model
        hits = mem.search("the red photo", limit=5, user_id="maya", retrievers=["multimodal"])
        red = before["The picture of my dog at the beach"].id
        score = {h.entry.id: h.scores["multimodal"] for h in hits}[red]
        assert (score > 0.5) is other_model


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda data: data[:-8], r"edited or cut|corrupt or truncated|not base64"),
        (
            lambda data: data[:40] + ("A" if data[40] != "A" else "B") + data[41:],
            r"edited or cut|corrupt or truncated|not an image",
        ),
        (lambda data: base64.b64encode(colour_png("blue")).decode(), r"edited or cut"),
        (lambda data: "not base64 at all!", r"not base64"),
    ],
    ids=["cut-bytes", "flipped-byte", "another-image", "not-base64"],
)
def test_a_damaged_image_line_is_refused_with_its_number(
    tmp_path, ref_host, image_export, damage, expected
):
    from lightmem_core.errors import InputError
    from lightmem_core.transfer import import_memory

    path, _, _, photos = image_export
    lines = path.read_text().splitlines()
    number = next(n for n, x in enumerate(lines, 1) if '"data":' in x)
    obj = json.loads(lines[number - 1])
    obj["image"]["data"] = damage(obj["image"]["data"])
    lines[number - 1] = json.dumps(obj)
    path.write_text("\n".join(lines) + "\n")
    with LightMemory(_target(tmp_path, photos), host=ref_host) as mem:
        with pytest.raises(InputError, match=rf"memory\.jsonl:{number}: .*({expected})"):
            import_memory(mem, path)
        assert mem.store.count_entries(status=None) == 0
        assert not (tmp_path / "b" / "images").exists() or not any(
            (tmp_path / "b" / "images").glob("*.png")
        )


def test_a_cut_image_line_and_a_reference_outside_the_roots_are_refused(
    tmp_path, ref_host, image_export
):
    from lightmem_core.errors import InputError
    from lightmem_core.transfer import import_memory

    path, _, _, photos = image_export
    lines = path.read_text().splitlines()
    number = next(n for n, x in enumerate(lines, 1) if '"data":' in x)
    cut = [*lines[: number - 1], lines[number - 1][:200], *lines[number:]]
    path.write_text("\n".join(cut) + "\n")
    mem = LightMemory(_target(tmp_path, photos), host=ref_host)
    with mem, pytest.raises(InputError, match=rf"memory\.jsonl:{number}: not JSON"):
        import_memory(mem, path)
    path.write_text("\n".join(lines) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with LightMemory(_target(tmp_path, elsewhere, "c"), host=ref_host) as mem:
        reference = next(n for n, x in enumerate(lines, 1) if '"reference":' in x)
        with pytest.raises(
            InputError, match=rf"jsonl:{reference}: .*outside images\.allowed_roots"
        ):
            import_memory(mem, path)
        assert mem.store.count_entries(status=None) == 0
    mem = LightMemory(reference_config(tmp_path / "d"), host=ref_host)  # no image memory
    with mem, pytest.raises(InputError, match=r"needs image memory"):
        import_memory(mem, path)


# -- retrieve_strategy: embedding (the vector side only) ------------------------------------


@pytest.fixture
def vector_side(tmp_path):
    """The original configuration's vector side: an embedding retriever, no text index."""
    return reference_config(
        tmp_path / "mem",
        multimodal_embedder={"model_name": "colours"},
        retrieve_strategy="embedding",
        index_strategy="embedding",
        context_retriever=None,
    )


def test_under_the_embedding_strategy_the_multimodal_retriever_finds_images(vector_side, ref_host):
    with LightMemory(vector_side, host=ref_host) as mem:
        labels = [r["name"] for r in mem.stats()["chains"]["retrievers"]]
        assert labels == ["embedding", "multimodal"]
        mem.add(
            [
                image_message("a day out", data_uri(colour_png("red"))),
                image_message("a day out", data_uri(colour_png("blue"))),
                {"role": "user", "content": "I like green tea with honey."},
            ],
            user_id="maya",
        )
        # the captions are the same: only the image's own vector tells them apart
        for colour in ("red", "blue"):
            hits = mem.search(f"the {colour} one", limit=3, user_id="maya")
            assert {label for h in hits for label in h.scores} == {"embedding", "multimodal"}
            (top,) = [h.entry for h in hits if h.ranks.get("multimodal") == 1]
            with open(top.metadata["image"]["path"], "rb") as f:
                assert f.read() == colour_png(colour)
        assert mem.search("the red one", limit=3, user_id="ana") == []  # scope applies
        assert mem.get(top.id) == top
        mem.delete(top.id)
        assert mem.get(top.id).status == "deleted"
        assert not _exists(top.metadata["image"]["path"])
        assert all(h.entry.id != top.id for h in mem.search("the blue one", user_id="maya"))
        assert [h["action"] for h in mem.history(top.id)] == ["add", "delete"]


def test_a_tenant_erase_leaves_no_trace_of_its_images(vector_side, ref_host, tmp_path):
    with LightMemory(vector_side, host=ref_host) as mem:
        mem.add([image_message("maya's red", data_uri(colour_png("red")))], user_id="maya-7f3a")
        mem.add([image_message("ana's blue", data_uri(colour_png("blue")))], user_id="ana")
        (maya,) = [e for e in mem.get_all(user_id="maya-7f3a") if e.category == "image"]
        receipt = mem.erase(user_id="maya-7f3a")
        assert receipt.index_records["context_retriever:multimodal"] >= 1
        assert "context_retriever:multimodal" in receipt.compacted
        assert not _exists(maya.metadata["image"]["path"])
        assert mem.get(maya.id) is None and mem.history(maya.id) == []
        assert mem.search("the red one", user_id="maya-7f3a") == []
        (hit,) = [h for h in mem.search("blue", user_id="ana") if h.entry.category == "image"]
        assert hit.entry.memory == "ana's blue"
    # the image index's file holds nothing of the erased tenant any more
    data = (tmp_path / "mem" / "images" / "images.db").read_bytes()
    assert b"maya-7f3a" not in data and maya.id.encode() not in data


def test_a_re_sent_image_of_a_deleted_entry_is_not_kept_or_embedded_again(config, ref_host):
    from lightmem_core.images import image_index

    message = image_message("first", data_uri(colour_png("green")))
    with LightMemory(config, host=ref_host) as mem:
        mem.add([message], user_id="u")
        (entry,) = [e for e in mem.get_all(user_id="u") if e.category == "image"]
        mem.delete(entry.id)
        path = entry.metadata["image"]["path"]
        assert not _exists(path)
        embedder = image_index(mem._rt).embedder
        calls = []
        original = embedder.embed_images
        embedder.embed_images = lambda images: calls.append(len(images)) or original(images)
        mem.add([message], user_id="u")  # re-sent: its entry exists (deleted)
        assert calls == [] and not _exists(path)  # no orphan file, no embedding
        assert mem.get(entry.id).status == "deleted"


def test_without_an_llm_an_image_only_message_makes_no_text_entry(config, ref_host):
    with LightMemory(config, host=ref_host) as mem:
        mem.add(
            [
                image_message("The picture of my dog at the beach", data_uri(colour_png("red"))),
                image_message(None, data_uri(colour_png("blue"))),
                {"role": "user", "content": "I like green tea with honey."},
            ],
            user_id="maya",
        )
        entries = mem.get_all(user_id="maya")
        texts = sorted(e.memory for e in entries if e.category != "image")
        images = sorted(e.memory for e in entries if e.category == "image")
        # the message with text keeps its text entry; the image-only one makes none
        assert texts == ["I like green tea with honey.", "The picture of my dog at the beach"]
        # the image-only message's caption is the text of the message before it
        assert images == ["The picture of my dog at the beach"] * 2
        assert all("[image]" not in e.memory for e in entries)
        hits = mem.search("image", limit=10, user_id="maya")
        assert all(h.entry.memory != "[image]" for h in hits)


class _ReversedColours(ColourEmbedder):
    """Another multimodal embedder: the colour axes in the other order, so the vectors of the
    one are wrong in the space of the other."""

    model_name = "reference-colours-reversed"

    def __init__(self) -> None:
        super().__init__()
        self.names.reverse()


class _ReversedPlugin:
    @hookimpl
    def lightmem_register_backends(self, registrar) -> None:
        registrar.multimodal_embedder("colours-reversed", lambda o, c: _ReversedColours())


def test_a_changed_multimodal_embedder_is_refused_until_reindex_embeds_the_files(tmp_path, caplog):
    import lightmem_core.builtin as builtin
    from lightmem_core.images import ImageEmbedderChangedError
    from lightmem_core.transfer import export_memory

    host = fresh_host(builtin, ReferencePlugin(), _ReversedPlugin())
    root = tmp_path / "photos"
    root.mkdir()
    (root / "sun.png").write_bytes(colour_png("yellow"))
    (root / "gone.png").write_bytes(colour_png("green"))

    def config(embedder: str) -> dict:
        return reference_config(
            tmp_path / "mem",
            multimodal_embedder={"model_name": embedder},
            images={"allowed_roots": [str(root)], "storage": "reference"},
        )

    def image_hits(mem, query):
        return [h.entry.memory for h in mem.search(query, limit=5, retrievers=["multimodal"])]

    with LightMemory(config("colours"), host=host) as mem:
        mem.add(
            [
                image_message("a copied photo", data_uri(colour_png("red"))),
                image_message("a referenced photo", f"file://{root / 'sun.png'}"),
                image_message("a photo that goes away", f"file://{root / 'gone.png'}"),
            ],
            user_id="maya",
        )
        copied = next(e for e in mem.get_all() if e.memory == "a copied photo")
        assert image_hits(mem, "red")[0] == "a copied photo"
    db = tmp_path / "mem" / "images" / "images.db"
    before = db.read_bytes()
    with LightMemory(config("colours-reversed"), host=host) as mem:
        with pytest.raises(ImageEmbedderChangedError, match="lightmem reindex") as info:
            mem.search("red", user_id="maya")
        assert "'reference-colours'" in str(info.value)
        assert "'reference-colours-reversed'" in str(info.value)
        with pytest.raises(ImageEmbedderChangedError):  # no image of the new space is added
            mem.add([image_message("blue", data_uri(colour_png("blue")))], user_id="maya")
        assert [e.memory for e in mem.get_all() if e.memory == "blue"] == []
        assert all(r.message.content != "blue" for r in mem.store.journal())
        with pytest.raises(ImageEmbedderChangedError):  # nor exported as the new one's
            export_memory(mem, tmp_path / "memory.jsonl")
        assert list(tmp_path.glob("memory.jsonl*")) == []
    assert db.read_bytes() == before  # nothing mixed into the index
    (root / "gone.png").unlink()
    with LightMemory(config("colours-reversed"), host=host) as mem:
        with caplog.at_level("WARNING", logger="lightmem"):
            assert mem.reindex() == 6  # 3 messages' text entries, 3 images
        (missing,) = [r.getMessage() for r in caplog.records if "image entry" in r.getMessage()]
        assert "the file is missing" in missing and str(root / "gone.png") in missing
        assert _exists(copied.metadata["image"]["path"])  # the reindex keeps the copied file
        # the images are found again in the new space: embedded again from their files
        assert image_hits(mem, "red")[0] == "a copied photo"
        assert image_hits(mem, "yellow")[0] == "a referenced photo"
        assert "a photo that goes away" not in image_hits(mem, "green")
        assert mem.get(copied.id).status == "active"
    with LightMemory(config("colours-reversed"), host=host) as mem:  # recorded: no refusal
        assert image_hits(mem, "red")[0] == "a copied photo"
    refused = pytest.raises(ImageEmbedderChangedError, match="'reference-colours-reversed'")
    with LightMemory(config("colours"), host=host) as mem, refused:
        mem.search("red")
