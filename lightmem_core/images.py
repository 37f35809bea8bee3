"""Image memory: images in messages become entries of their own, embedded and searched as images.

Messages may carry OpenAI-style content parts: ``{"type": "text", "text": ...}`` and
``{"type": "image_url", "image_url": {"url": ...}}`` where the URL is a ``data:`` URI (base64)
or a local file (a path or ``file://``) under one of ``images.allowed_roots``; nothing is
downloaded. Every image is checked before anything is written (:func:`split_images`): a
``data:`` URI that is not base64, a path outside the allowed roots, a file over
``images.max_bytes``, a format not in ``images.formats``, a corrupt or truncated image — each an
:class:`ImageInputError` naming ``messages[i].content[j]``, and nothing of the call is stored.

The message keeps its text parts (``[image]`` when it has none) and lists its images in
``metadata["images"]``; without an LLM, a message with no text makes no text entry
(:func:`images_only`), only its images' entries. After the messages are journaled, each
image becomes an entry (:func:`store_image_entries`): its text is the caption (the
message's own text, else the text of the message before it in the call), ``category`` is
``"image"``, ``metadata["image"]`` says where the image is (``path``) and what it is
(``sha256``, ``media_type``, ``width``, ``height``, ``bytes``, ``storage``), with the message
as provenance, its time stamp, speaker and scope. With ``images.storage: copy`` the file is
kept once per content hash in ``<memory_dir>/images``; with ``reference`` the caller's path
is kept.

The entries are stored once the messages are journaled, before extraction. With an LLM, the
extraction call shows each image as a marker (``[image i1]``) and may caption it in the same
answer (see ``llm/extraction.py``); the ingestion stage rewrites each entry that
:func:`captioned_entries` names to its caption (an ``update`` in its history), and the text
indexes follow.

The entry's caption goes into the text indexes like any entry; the image itself is embedded by
the ``multimodal_embedder`` into the vector index of the ``multimodal`` retriever
(:class:`ImageIndex`, SQLite in ``<memory_dir>/images``), which joins the retrieval chain with
its weight and answers a query with the images nearest to the query's text embedding. Deleting
an image entry (``delete``, an update pass, an erase) removes it from that index and removes a
copied file no other entry uses. The index records the multimodal embedder's fingerprint; with
another embedder configured, its use is refused (:class:`ImageEmbedderChangedError`) until a
reindex embeds the images again from their files (:func:`reembed_images`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import IndexRecord, MemoryEntry, Scope, SearchFilter, entry_payload

from .errors import InputError
from .fingerprint import EmbedderChangedError

log = logging.getLogger("lightmem")

#: Pillow format name -> media type and file extension.
FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", ".png"),
    "JPEG": ("image/jpeg", ".jpg"),
    "GIF": ("image/gif", ".gif"),
    "WEBP": ("image/webp", ".webp"),
    "BMP": ("image/bmp", ".bmp"),
    "TIFF": ("image/tiff", ".tif"),
}
_DATA_URI = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*),", re.S)
PLACEHOLDER = "[image]"


class ImageEmbedderChangedError(EmbedderChangedError):
    """The image index's vectors were made by another multimodal embedder than the configured
    one (``lightmem reindex`` embeds the images again from their files)."""


class ImageInputError(InputError):
    """An image in a message cannot be used (what, where — ``messages[i].content[j]`` — and
    what to do); nothing of the call was stored."""


@attrs.frozen
class ImagePart:
    """One checked image of a message."""

    message: int
    part: int
    data: bytes = attrs.field(repr=False)
    sha256: str
    format: str
    width: int
    height: int
    source: str | None  # the caller's file, for a local path

    @property
    def media_type(self) -> str:
        return FORMATS.get(self.format, ("application/octet-stream", ""))[0]

    def ref(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "bytes": len(self.data),
        }


def has_parts(messages: Any) -> bool:
    items = [messages] if isinstance(messages, Mapping) else messages
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        return False
    return any(isinstance(m, Mapping) and isinstance(m.get("content"), list) for m in items)


def images_only(message: Any) -> bool:
    """Whether a normalised message carried images and no text (its content is
    :data:`PLACEHOLDER`): without an LLM it makes no text entry, only its images' entries."""
    return message.content == PLACEHOLDER and bool(message.metadata.get("images"))


def split_images(messages: Any, options: Any, enabled: bool) -> tuple[Any, list[ImagePart]]:
    """Messages with their content parts turned into text, and their images, checked.

    ``options`` is the configuration's ``images`` section; ``enabled`` whether a
    ``multimodal_embedder`` is configured. Messages without parts are returned as given.
    """
    if not has_parts(messages):
        return messages, []
    items = [messages] if isinstance(messages, Mapping) else list(messages)
    out: list[Any] = []
    images: list[ImagePart] = []
    for i, message in enumerate(items):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            out.append(message)
            continue
        texts: list[str] = []
        found: list[ImagePart] = []
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            if not isinstance(part, Mapping):
                raise ImageInputError(
                    f"{where}: expected a content part (a dict with 'type'), got "
                    f"{type(part).__name__}"
                )
            kind = part.get("type")
            if kind in ("text", "input_text"):
                text = part.get("text")
                if not isinstance(text, str):
                    raise ImageInputError(f"{where}.text: expected a string")
                texts.append(text)
            elif kind in ("image_url", "input_image"):
                if not enabled:
                    raise ImageInputError(
                        f"{where}: an image part needs image memory: configure "
                        "multimodal_embedder (e.g. {'model_name': 'huggingface'}), or send "
                        "the text only"
                    )
                found.append(_image(part, where, options, i, j))
            else:
                raise ImageInputError(f"{where}.type: expected 'text' or 'image_url', got {kind!r}")
        text = "\n".join(t.strip() for t in texts if t.strip())
        metadata = dict(message.get("metadata") or {})
        if found:
            metadata["images"] = [{**p.ref(), "part": p.part} for p in found]
        out.append({**message, "content": text or PLACEHOLDER, "metadata": metadata})
        images += found
    return out, images


def _image(part: Mapping[str, Any], where: str, options: Any, i: int, j: int) -> ImagePart:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, Mapping) else value
    if not isinstance(url, str) or not url:
        raise ImageInputError(f"{where}.image_url: expected {{'url': 'data:...' or a path}}")
    limit = int(options.max_bytes)
    source: str | None = None
    if url.startswith("data:"):
        data = _data_uri(url, where, limit)
    elif re.match(r"^[a-z][a-z0-9+.-]*://", url, re.I) and not url.startswith("file://"):
        raise ImageInputError(
            f"{where}: {url.split('://')[0]}:// URLs are not fetched (LightMem downloads "
            "nothing); send the image as a data: URI or a local file under images.allowed_roots"
        )
    else:
        data, source = _local_file(url.removeprefix("file://"), where, options, limit)
    return _check(data, where, options, i, j, source)


def _data_uri(url: str, where: str, limit: int) -> bytes:
    m = _DATA_URI.match(url)
    if m is None or ";base64" not in m.group("params").lower():
        raise ImageInputError(
            f"{where}: the data: URI is not base64 (expected data:image/png;base64,...)"
        )
    payload = url[m.end() :]
    if len(payload) * 3 // 4 > limit + 3:
        raise ImageInputError(
            f"{where}: the image is over images.max_bytes ({limit} bytes); send a smaller one "
            "or raise the limit"
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageInputError(f"{where}: the data: URI is not valid base64 ({exc})") from None


def _local_file(path: str, where: str, options: Any, limit: int) -> tuple[bytes, str]:
    roots = [Path(r).expanduser().resolve() for r in options.allowed_roots]
    if not roots:
        raise ImageInputError(
            f"{where}: local image files are not allowed (images.allowed_roots is empty); "
            "list the folders images may come from, or send a data: URI"
        )
    real = Path(path).expanduser().resolve()
    if not any(real.is_relative_to(root) for root in roots):
        raise ImageInputError(
            f"{where}: {path!r} is outside images.allowed_roots "
            f"({', '.join(str(r) for r in roots)}); move it there or add its folder"
        )
    if not real.is_file():
        raise ImageInputError(f"{where}: no image file at {path!r}")
    if real.stat().st_size > limit:
        raise ImageInputError(
            f"{where}: the image is over images.max_bytes ({limit} bytes); send a smaller one "
            "or raise the limit"
        )
    return real.read_bytes(), str(real)


def _check(data: bytes, where: str, options: Any, i: int, j: int, source: str | None) -> ImagePart:
    if len(data) > options.max_bytes:
        raise ImageInputError(
            f"{where}: the image is over images.max_bytes ({options.max_bytes} bytes); send a "
            "smaller one or raise the limit"
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = str(probe.format)
            probe.verify()
    except UnidentifiedImageError:
        raise ImageInputError(
            f"{where}: not an image in a format LightMem reads (accepted: "
            f"{', '.join(options.formats)})"
        ) from None
    except Exception as exc:
        raise ImageInputError(f"{where}: corrupt or truncated image ({exc})") from None
    if fmt not in options.formats:
        raise ImageInputError(
            f"{where}: unsupported image format {fmt}; accepted: {', '.join(options.formats)} "
            "(images.formats)"
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes every pixel: a truncated file fails here
            width, height = image.size
    except Exception as exc:
        raise ImageInputError(f"{where}: corrupt or truncated image ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    return ImagePart(i, j, data, digest, fmt, width, height, source)


# -------------------------------------------------------------------------------------------
# Entries
# -------------------------------------------------------------------------------------------


def is_image_entry(entry: MemoryEntry) -> bool:
    """Whether ``entry`` is an image's entry (not a fact that the LLM filed as "image")."""
    return entry.category == "image" and isinstance(entry.metadata.get("image"), Mapping)


def image_dir(memory_dir: str | Path) -> Path:
    return Path(memory_dir) / "images"


def _keep(part: ImagePart, folder: Path, storage: str) -> str:
    if storage == "reference" and part.source is not None:
        return part.source
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{part.sha256}{FORMATS.get(part.format, ('', '.img'))[1]}"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(part.data)
        os.replace(tmp, target)
    return str(target)


def image_entries(
    rt: Any,
    messages: Any,
    images: Sequence[ImagePart],
    scope: Scope,
    skip: Callable[[list[str]], set[str]] | None = None,
) -> list[tuple[MemoryEntry, ImagePart]]:
    """Each image's entry (its file kept first, as configured), not yet stored; ``skip``
    names, of the entry ids, those to leave out (stored already: no file is kept for them)."""
    from .messages import normalize_messages

    normalized = normalize_messages(messages, scope)
    options = rt.config.images
    folder = image_dir(rt.config.memory_dir)
    ids = [
        image_entry_id(m.scope, m.id, part.part, part.sha256)
        for part in images
        for m in [normalized[part.message]]
    ]
    left_out = skip(ids) if skip is not None else set()
    out = []
    for part, entry_id in zip(images, ids, strict=True):
        if entry_id in left_out:
            continue
        message = normalized[part.message]
        caption = message.content if message.content != PLACEHOLDER else ""
        k = part.message - 1
        while not caption and k >= 0:
            if normalized[k].content != PLACEHOLDER:
                caption = normalized[k].content
            k -= 1
        storage = "reference" if options.storage == "reference" and part.source else "copy"
        path = _keep(part, folder, storage)
        entry = MemoryEntry(
            id=entry_id,
            memory=caption or "an image",
            source_message_ids=(message.id,),
            time_stamp=message.time_stamp,
            speaker_id=message.speaker_id,
            speaker_name=message.speaker_name,
            scope=message.scope,
            category="image",
            metadata={"image": {**part.ref(), "path": path, "storage": storage}},
        )
        out.append((entry, part))
    return out


def image_entry_id(scope: Scope, message_id: str, part: int, sha256: str) -> str:
    """The id of the entry of the image in content part ``part`` of a message."""
    key = json.dumps([scope.as_dict(), message_id, part, sha256])
    return "img-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:29]


def captioned_entries(
    rt: Any, captions: Sequence[Any], messages: Mapping[str, Any]
) -> list[tuple[MemoryEntry, str]]:
    """The image entries an extraction call wrote new captions for (``ImageCaption``s), each
    with its caption; the ingestion stage rewrites them (with :data:`CAPTION_REASON`) while it
    holds the memory's lock. ``messages``: the batch's messages by id, for their scope. An
    entry that is gone, retired, or already has that caption is left out."""
    out = []
    for caption in captions:
        message = messages.get(caption.message_id)
        if message is None:
            continue
        entry_id = image_entry_id(message.scope, message.id, caption.part, caption.sha256)
        entry = rt.store.get_entry(entry_id)
        if entry is None or entry.status != "active" or entry.memory == caption.text:
            continue
        out.append((entry, caption.text))
    return out


#: The reason an image entry's history gives for its caption from the extraction call.
CAPTION_REASON = "caption from the extraction"


def store_image_entries(
    rt: Any, messages: Any, images: Sequence[ImagePart], scope: Scope
) -> list[MemoryEntry]:
    """Store, embed and index the entries of ``images`` (after their messages are journaled);
    an image already stored for the same message is not stored (nor embedded) again. The
    images are embedded before the memory's lock is taken: a search does not wait for it."""
    if not images:
        return []
    index = image_index(rt)

    def stored_already(ids: list[str]) -> set[str]:
        return {e.id for e in rt.store.entries(ids, status=None)}

    pairs = image_entries(rt, messages, images, scope, skip=stored_already)
    if not pairs:
        return []
    vectors: Any = index.embed([p.data for _, p in pairs]) if index is not None else None
    with rt.lock:
        rt.indexer.open()
        batch = rt.store.create_batch([], scope=scope)
        stored = rt.store.complete_batch(batch, [e for e, _ in pairs])
        fresh = {e.id for e in stored}
        if index is not None:
            index.add_vectors(
                [(e, v) for (e, _), v in zip(pairs, vectors, strict=True) if e.id in fresh]
            )
        rt.indexer.index(stored, defer=True)
        if stored:
            rt.hooks.entries_stored(stored)
    return stored


def image_index(rt: Any) -> ImageIndex | None:
    """The memory's ``multimodal`` retriever, if its chain has one."""
    for retriever in rt.backends.retrievers():
        if isinstance(retriever.backend, ImageIndex):
            return retriever.backend
    return None


@attrs.frozen
class ImagesReembedded:
    """What :func:`reembed_images` did: images embedded again, and the image entries left out
    of the image index (entry id, path, why: the file is missing, unreadable or changed)."""

    embedded: int
    left_out: tuple[tuple[str, str, str], ...] = ()


#: Images embedded per call of the multimodal embedder during a reindex.
REEMBED_CHUNK = 64


def reembed_images(rt: Any) -> ImagesReembedded:
    """Embed every active image entry again, from its file (a copy in ``<memory_dir>/images``
    or the caller's referenced file), into the image index emptied by the reindex, and record
    the configured multimodal embedder's fingerprint. An image whose file is missing,
    unreadable or no longer the image its entry records (SHA-256) is left out of the index and
    reported (a warning each); its entry and its caption stay."""
    index = image_index(rt)
    if index is None:
        return ImagesReembedded(0)
    index.check()  # the emptied index takes the configured embedder's fingerprint
    entries = [e for e in rt.store.entries(status="active") if is_image_entry(e)]
    left_out: list[tuple[str, str, str]] = []
    done = 0
    for start in range(0, len(entries), REEMBED_CHUNK):
        items: list[tuple[MemoryEntry, bytes]] = []
        for entry in entries[start : start + REEMBED_CHUNK]:
            image = entry.metadata["image"]
            path = str(image.get("path"))
            try:
                data = Path(path).read_bytes()
            except FileNotFoundError:
                why = "the file is missing"
            except OSError as exc:
                why = f"the file cannot be read ({exc.strerror or exc})"
            else:
                if hashlib.sha256(data).hexdigest() == image.get("sha256"):
                    items.append((entry, data))
                    continue
                why = "the file is no longer the image the entry records (SHA-256)"
            left_out.append((entry.id, path, why))
            log.warning(
                "reindex: image entry %s: %s (%s); it is left out of the image index (its "
                "caption stays searchable); put the image back and run lightmem reindex again, "
                "or delete the entry",
                entry.id,
                why,
                path,
            )
        index.add_images(items)
        done += len(items)
    return ImagesReembedded(done, tuple(left_out))


# -------------------------------------------------------------------------------------------
# The multimodal retriever
# -------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    entry_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    storage TEXT NOT NULL,
    payload TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS indexed (entry_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: The ``meta`` key holding the fingerprint of the multimodal embedder that made the vectors.
EMBEDDER_META = "multimodal_embedder"


class ImageIndex:
    """The ``multimodal`` retriever: image vectors from the multimodal embedder, searched by the
    query text's vector in the same space (exact, cosine). Its ``count`` covers every entry
    it was given, so the core's catch-up sees it in line; ``delete`` also removes a copied
    image file no remaining entry uses; ``compact`` (after a tenant erase) rewrites its file
    without the removed rows' bytes (the optional :class:`~lightmem_hookspecs.IndexCompaction`)
    and ``reset`` empties it for a reindex (:class:`~lightmem_hookspecs.TextReset`).

    It takes part in every ``retrieve_strategy`` (``every_strategy``, the optional
    :class:`~lightmem_hookspecs.EveryStrategy`): under ``embedding`` (the vector side only) it
    is a vector search like the embedding retrievers; under ``context`` the images would
    otherwise be found by their captions alone."""

    #: The retrieval stage runs this retriever whatever the query's strategy.
    every_strategy = True

    def __init__(self, embedder: Any, folder: Path) -> None:
        self.embedder = embedder
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / "images.db", check_same_thread=False)
        self._db.execute("PRAGMA secure_delete=ON")  # a deleted image's bytes are overwritten
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._matrix: _Loaded | None = None  # loaded on the first search
        self._checked = False  # the embedder's fingerprint matched the index's (or was recorded)

    # -- which embedder made the vectors ------------------------------------------------------

    def fingerprint(self) -> dict[str, Any]:
        """The configured multimodal embedder's fingerprint (model name, dimension)."""
        return {
            "model_name": str(self.embedder.model_name),
            "dimension": int(self.embedder.dimension),
        }

    def check(self) -> None:
        """Refuse (:class:`ImageEmbedderChangedError`) an index whose vectors another
        multimodal embedder made; record the configured one's fingerprint in an index that has
        none. Every use of the vectors (embedding, indexing, searching, exporting) checks
        first, so vectors of two embedders are never mixed or compared."""
        if self._checked:
            return
        current = self.fingerprint()  # may load the model: outside the lock
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT value FROM meta WHERE key=?", (EMBEDDER_META,)
            ).fetchone()
            if row is None:
                # a new index, or one written before the fingerprint was kept: from now on
                # its vectors are the configured embedder's
                self._db.execute(
                    "INSERT INTO meta VALUES (?, ?)",
                    (EMBEDDER_META, json.dumps(current, sort_keys=True)),
                )
            else:
                stored = json.loads(row[0])
                if stored != current:
                    raise ImageEmbedderChangedError(
                        f"{self.folder / 'images.db'}: this memory's image vectors were made by "
                        f"the multimodal embedder {stored.get('model_name')!r} "
                        f"({stored.get('dimension')} dimensions); the configuration's "
                        f"multimodal_embedder is {current['model_name']!r} "
                        f"({current['dimension']} dimensions). Run `lightmem reindex` with this "
                        "configuration to embed the images again from their files, or configure "
                        "the multimodal embedder they were made with. Vectors of two embedders "
                        "are never mixed."
                    )
            self._checked = True

    def reset(self) -> None:
        """Empty the index (for a reindex, which rebuilds it from the record store: see
        :func:`reembed_images`); no image file is removed, and the embedder's fingerprint is
        recorded again by the next use."""
        with self._lock, self._db:
            for table in ("images", "indexed", "meta"):
                self._db.execute(f"DELETE FROM {table}")
            self._matrix = None
            self._checked = False

    # -- writes -------------------------------------------------------------------------------

    def embed(self, images: Sequence[bytes]) -> Any:
        """The multimodal embedder's vectors of ``images`` (one row each)."""
        import numpy as np

        self.check()
        if not images:
            return np.zeros((0, int(self.embedder.dimension)), dtype=np.float32)
        vectors = np.asarray(self.embedder.embed_images(list(images)), dtype=np.float32)
        if vectors.shape != (len(images), int(self.embedder.dimension)):
            raise ValueError(
                f"multimodal_embedder returned shape {vectors.shape} for {len(images)} images"
            )
        return vectors

    def add_images(self, items: Sequence[tuple[MemoryEntry, bytes]]) -> None:
        """Embed and index image entries."""
        if items:
            vectors = self.embed([d for _, d in items])
            self.add_vectors(list(zip([e for e, _ in items], vectors, strict=True)))

    def add_vectors(self, items: Sequence[tuple[MemoryEntry, Any]]) -> None:
        """Index image entries with their vectors as given (an import whose vectors this
        embedder made)."""
        import numpy as np

        self.check()
        rows = []
        for entry, raw in items:
            vector = np.asarray(raw, dtype=np.float32)
            image = entry.metadata["image"]
            payload = json.dumps(entry_payload(entry))
            rows.append(
                (
                    entry.id,
                    image["sha256"],
                    image["path"],
                    image["storage"],
                    payload,
                    vector.tobytes(),
                )
            )
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?,?)", rows)
            self._db.executemany(
                "INSERT OR IGNORE INTO indexed VALUES (?)", [(r[0],) for r in rows]
            )
            self._matrix = None

    def index(self, records: Sequence[IndexRecord]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO indexed VALUES (?)", [(r.id,) for r in records]
            )

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        with self._lock, self._db:
            marks = ",".join("?" * len(ids))
            gone = self._db.execute(
                f"SELECT sha256, path, storage FROM images WHERE entry_id IN ({marks})", ids
            ).fetchall()
            self._db.execute(f"DELETE FROM images WHERE entry_id IN ({marks})", ids)
            self._db.execute(f"DELETE FROM indexed WHERE entry_id IN ({marks})", ids)
            for sha, path, storage in gone:
                used = self._db.execute(
                    "SELECT 1 FROM images WHERE sha256=? AND storage='copy'", (sha,)
                ).fetchone()
                if storage == "copy" and used is None:
                    Path(path).unlink(missing_ok=True)
            self._matrix = None

    def vector(self, entry_id: str) -> Any:
        """The vector of an image entry, or ``None``."""
        import numpy as np

        self.check()
        with self._lock:
            row = self._db.execute(
                "SELECT vector FROM images WHERE entry_id=?", (entry_id,)
            ).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32)

    def compact(self) -> None:
        """Rewrite the index file so removed images' vectors and payloads are gone from it."""
        with self._lock:
            self._db.execute("VACUUM")

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM indexed").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- search -------------------------------------------------------------------------------

    def search(
        self, query: str, *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        import numpy as np

        self.check()
        loaded = self._load()
        ids = loaded.ids
        if not ids or limit <= 0:
            return []
        keep = loaded.rows(filter)
        if keep is not None and keep.size == 0:
            return []
        q = np.asarray(self.embedder.embed_texts([query]), dtype=np.float32)[0]
        if keep is None:
            scores = loaded.matrix @ q
            keep = np.arange(len(ids))
        else:
            scores = np.zeros(len(ids), dtype=np.float32)
            scores[keep] = loaded.matrix[keep] @ q
        best = keep[np.argsort(-scores[keep], kind="stable")[:limit]]
        return [(ids[k], float(scores[k])) for k in best]

    def _load(self) -> _Loaded:
        import numpy as np

        with self._lock:
            if self._matrix is None:
                rows = self._db.execute(
                    "SELECT entry_id, payload, vector FROM images ORDER BY entry_id"
                ).fetchall()
                dim = int(self.embedder.dimension)
                matrix = (
                    np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
                    if rows
                    else np.zeros((0, dim), dtype=np.float32)
                )
                payloads = [json.loads(r[1]) for r in rows]
                self._matrix = _Loaded([r[0] for r in rows], payloads, matrix)
            return self._matrix


_FILTER_FIELDS = ("user_id", "agent_id", "run_id", "speaker", "topic_id")


class _Loaded:
    """The index in memory: ids and vectors in one order, with the payloads' filter fields as
    columns, so a search's filter is a few array comparisons instead of a Python test
    per image."""

    def __init__(self, ids: list[str], payloads: list[dict[str, Any]], matrix: Any) -> None:
        import numpy as np

        self.ids = ids
        self.matrix = matrix
        self.position = {entry_id: k for k, entry_id in enumerate(ids)}
        # each filter field as codes: the k-th distinct value of the field is k
        self.codes: dict[str, tuple[dict[Any, int], Any]] = {}
        for key in _FILTER_FIELDS:
            vocabulary: dict[Any, int] = {}
            codes = [vocabulary.setdefault(p.get(key), len(vocabulary)) for p in payloads]
            self.codes[key] = (vocabulary, np.array(codes, dtype=np.int64))
        stamps = [p.get("time_stamp") for p in payloads]
        self.stamps = np.array([np.nan if t is None else float(t) for t in stamps], dtype=float)

    def rows(self, filter: SearchFilter | None) -> Any:
        """Positions the filter keeps (``SearchFilter.matches`` semantics); ``None``: all."""
        import numpy as np

        if filter is None or filter.is_empty:
            return None
        mask = np.ones(len(self.ids), dtype=bool)
        for key in _FILTER_FIELDS:
            wanted = getattr(filter, key)
            if wanted is not None:
                vocabulary, codes = self.codes[key]
                mask &= codes == vocabulary.get(wanted, -1)
        stamps = self.stamps
        with np.errstate(invalid="ignore"):  # no time stamp (NaN) fails every bound
            if filter.time_gt is not None:
                mask &= stamps > filter.time_gt
            if filter.time_gte is not None:
                mask &= stamps >= filter.time_gte
            if filter.time_lt is not None:
                mask &= stamps < filter.time_lt
            if filter.time_lte is not None:
                mask &= stamps <= filter.time_lte
        for entry_id in filter.exclude_ids:
            k = self.position.get(entry_id)
            if k is not None:
                mask[k] = False
        return np.flatnonzero(mask)


def build_image_index(options: Any, context: Any) -> ImageIndex:
    """Factory of the ``multimodal`` context retriever (needs ``multimodal_embedder``)."""
    embedder = context.get_backend("multimodal_embedder")
    if embedder is None:
        raise InputError(
            "the multimodal retriever needs a multimodal_embedder; configure one (e.g. "
            "{'model_name': 'huggingface'})"
        )
    return ImageIndex(embedder, image_dir(context.memory_dir))


# -------------------------------------------------------------------------------------------
# Export and import (``lightmem export`` / ``lightmem import``, see transfer.py)
# -------------------------------------------------------------------------------------------


def multimodal_fingerprint(index: ImageIndex | None) -> dict[str, Any] | None:
    """Which multimodal embedder made the image vectors (an export's header carries it)."""
    return None if index is None else index.fingerprint()


def export_image(index: ImageIndex | None, entry: MemoryEntry) -> dict[str, Any] | None:
    """The ``image`` object of an active image entry's export line: the bytes of a copied
    image (base64) or the path of a referenced one, and the image's vector (base64 float32,
    ``null`` if it has none); ``None`` for other entries, retired ones, or a copied file that
    is gone."""
    image = entry.metadata.get("image")
    if entry.category != "image" or entry.status != "active" or not isinstance(image, Mapping):
        return None
    out: dict[str, Any] = {}
    if image.get("storage") == "reference":
        out["reference"] = str(image.get("path"))
    else:
        try:
            out["data"] = base64.b64encode(Path(str(image.get("path"))).read_bytes()).decode()
        except OSError:
            return None
    vector = index.vector(entry.id) if index is not None else None
    out["vector"] = None if vector is None else base64.b64encode(vector.tobytes()).decode()
    return out


@attrs.frozen
class ImportedImage:
    """An image entry's image, read from an export line and checked."""

    part: ImagePart
    vector: Any  # the file's vector (numpy float32), or None


def read_image_line(
    value: Any, entry: MemoryEntry, header: Mapping[str, Any], options: Any
) -> ImportedImage:
    """Check the ``image`` object of an export line (``ValueError`` saying what is wrong):
    the bytes (or the referenced file, under ``images.allowed_roots``) must be an image this
    memory accepts, with the SHA-256 the entry records; the vector, the dimension of the
    header's multimodal embedder."""
    import numpy as np

    meta = entry.metadata.get("image")
    if entry.category != "image" or not isinstance(meta, Mapping) or not meta.get("sha256"):
        raise ValueError("image: only an image entry (category image, metadata.image) has one")
    if options is None:
        raise ValueError(
            "image: an image entry needs image memory in this configuration: configure "
            "multimodal_embedder (e.g. {'model_name': 'huggingface'})"
        )
    if not isinstance(value, Mapping) or ("data" in value) == ("reference" in value):
        raise ValueError("image: expected an object with data (base64) or reference (a path)")
    try:
        if "data" in value:
            if not isinstance(value["data"], str):
                raise ImageInputError("image.data: expected base64 text")
            try:
                data = base64.b64decode(value["data"], validate=True)
            except (binascii.Error, ValueError):
                raise ImageInputError("image.data: not base64") from None
            part = _check(data, "image.data", options, 0, 0, None)
        else:
            where = "image.reference"
            if not isinstance(value["reference"], str) or not value["reference"]:
                raise ImageInputError(f"{where}: expected a path")
            data, source = _local_file(value["reference"], where, options, int(options.max_bytes))
            part = _check(data, where, options, 0, 0, source)
    except ImageInputError as exc:
        raise ValueError(str(exc)) from None
    if part.sha256 != meta["sha256"]:
        what = "the referenced file changed" if "reference" in value else "edited or cut"
        raise ValueError(
            f"image: its SHA-256 is {part.sha256[:12]}..., the entry's image is "
            f"{str(meta['sha256'])[:12]}... ({what}); export it again"
        )
    vector = None
    raw = value.get("vector")
    if raw is not None:
        dimension = (header.get("multimodal_embedder") or {}).get("dimension")
        try:
            decoded = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        except (binascii.Error, ValueError):
            decoded = None
        if decoded is None or (dimension is not None and len(decoded) != 4 * int(dimension)):
            raise ValueError(
                f"image.vector: expected base64 of {dimension} float32 values (the header's "
                "multimodal embedder)"
            )
        vector = np.frombuffer(decoded, dtype="<f4")
    return ImportedImage(part, vector)


def place_imported(rt: Any, entry: MemoryEntry, image: ImportedImage) -> MemoryEntry:
    """Keep an imported image the way this memory keeps images (a copy stored by content hash
    in ``<memory_dir>/images``, or the caller's referenced file) and return the entry
    pointing at it."""
    storage = "reference" if image.part.source is not None else "copy"
    path = _keep(image.part, image_dir(rt.config.memory_dir), storage)
    meta = {**entry.metadata["image"], "path": path, "storage": storage}
    return attrs.evolve(entry, metadata={**entry.metadata, "image": meta})


def index_imported(
    rt: Any, entries: Sequence[MemoryEntry], images: Mapping[str, ImportedImage], header: Any
) -> tuple[int, bool]:
    """Put imported active image entries into the image index: with the file's vectors when
    the header's multimodal embedder is this memory's, else embedded again. Returns how many,
    and whether they were embedded again."""
    index = image_index(rt)
    todo = [e for e in entries if e.id in images]
    if index is None or not todo:
        return 0, False
    same = header.get("multimodal_embedder") == multimodal_fingerprint(index)
    if same and all(images[e.id].vector is not None for e in todo):
        index.add_vectors([(e, images[e.id].vector) for e in todo])
        return len(todo), False
    index.add_images([(e, images[e.id].part.data) for e in todo])
    return len(todo), True
