"""Block-aligned prompt evaluation and the persistent prefix KV cache (runs in the worker).

A prompt is evaluated in blocks of ``block`` tokens, aligned at the prompt's start, and the
answer's generation evaluates only the last, partial block. Why blocks: llama.cpp's numbers for
a token depend on the batch it was evaluated in, so reusing a state evaluated in other pieces
changes an answer. With every prompt cut at the same boundaries, the key/value state after
block ``k`` depends on the first ``k * block`` tokens alone, whichever call computed it, in this
process or in an earlier one: reusing it is lossless (greedy decoding gives the same answer
with and without the cache). The same rule makes an answer independent of the previous call
even without ``kv_cache``: only whole blocks of the previous prompt are reused in process.

With ``kv_cache``, the state at the deepest block boundary a prompt shares with an earlier
prompt (its static prefix: system message, instructions, output format — and, for the update
pass, the memories listed first) is saved once to a file in ``kv_cache_dir``; later calls, in
this worker or another, restore the longest saved prefix and evaluate only the rest.

A file is named by the hash of its prefix (chained over the tokens, seeded with the model
file's SHA-256, the context size, the block size and the runtime's version), and holds a header
(those keys, the token ids, the state's length and SHA-256) and the state. A file that does not
check out — truncated, corrupt, from another model or build — is removed and reported as an
event (the host turns it into a :class:`~lightmem_llamacpp.errors.KVCacheWarning`); the prefix
is evaluated and saved again. The files together stay under ``max_bytes``: the least recently
used go first.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

MAGIC = b"LMKV\x01\n"
SUFFIX = ".lmkv"
#: Prefix hashes of recent prompts remembered (to see which prefixes recur).
SEEN_LIMIT = 4096


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_hash(model_path: Path, folder: Path) -> str:
    """The model file's SHA-256, remembered in ``folder/models.json`` by path, size and mtime."""
    stat = model_path.stat()
    key = f"{model_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index = folder / "models.json"
    try:
        known = json.loads(index.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), str):
        return str(known[key])
    digest = file_sha256(model_path)
    known[key] = digest
    _write_atomic(index, json.dumps(known).encode("utf-8"))
    return digest


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PrefixCache:
    """Evaluates prompts block by block for one ``llama_cpp.Llama``, reusing what it can."""

    def __init__(
        self,
        llm: Any,
        *,
        block: int,
        folder: Path | None,
        model_path: Path,
        max_bytes: int,
        runtime: str,
        n_ctx: int,
    ) -> None:
        self.llm, self.block, self.folder, self.max_bytes = llm, block, folder, max_bytes
        self.canonical = 0  # the current state's tokens [0, canonical) were evaluated in blocks
        self.events: list[dict[str, Any]] = []
        self.seed = b""
        self.model_sha256 = ""
        self.seen: dict[str, None] = {}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.model_sha256 = model_hash(model_path, folder)
            self.seed = json.dumps(
                [self.model_sha256, n_ctx, block, runtime], separators=(",", ":")
            ).encode("utf-8")
            self.seen = dict.fromkeys(self._load_seen())

    # -- per call -------------------------------------------------------------------------

    def prepare(self, tokens: list[int]) -> dict[str, Any]:
        """Bring the model's state to the prompt's last whole block; what it cost."""
        llm, block = self.llm, self.block
        limit = ((len(tokens) - 1) // block) * block  # generation evaluates the rest (>= 1)
        current = list(llm.input_ids[: min(llm.n_tokens, self.canonical)])
        common = 0
        for a, b in zip(current, tokens[:limit], strict=False):
            if a != b:
                break
            common += 1
        reused = (common // block) * block
        restored = 0
        hashes = self._hashes(tokens, limit) if self.folder is not None else []
        for k in range(len(hashes), reused // block, -1):
            if self._restore(hashes[k - 1], tokens[: k * block]):
                restored, reused = k * block, 0
                break
        start = max(reused, restored)
        # the deepest boundary an earlier prompt shared: its state is saved once
        checkpoint = 0
        for k in range(len(hashes), restored // block, -1):
            if hashes[k - 1] in self.seen:
                if not self._path(hashes[k - 1]).exists():
                    checkpoint = k * block
                break
        if checkpoint and checkpoint < start:
            start = reused = checkpoint  # back to the boundary (its blocks are evaluated again)
        llm.n_tokens = start
        llm._ctx.kv_cache_seq_rm(-1, start, -1)
        saved = False
        if checkpoint and checkpoint == start:
            saved = self._save(hashes[checkpoint // block - 1], tokens[:checkpoint])
        for at in range(start, limit, block):
            llm.eval(tokens[at : at + block])
            if at + block == checkpoint:
                saved = self._save(hashes[checkpoint // block - 1], tokens[:checkpoint])
        self.canonical = limit
        if hashes:
            self._remember(hashes)
        return {
            "reused_tokens": reused,
            "restored_tokens": restored,
            "evaluated_tokens": len(tokens) - start,
            "saved": saved,
        }

    # -- hashes ---------------------------------------------------------------------------

    def _hashes(self, tokens: list[int], limit: int) -> list[str]:
        """The chained hash of each block boundary up to ``limit``."""
        digest = hashlib.sha256(self.seed)
        out = []
        for at in range(0, limit, self.block):
            digest.update(
                b"".join(t.to_bytes(4, "little", signed=True) for t in tokens[at : at + self.block])
            )
            out.append(digest.copy().hexdigest()[:48])
        return out

    def _remember(self, hashes: list[str]) -> None:
        for h in hashes:
            self.seen.pop(h, None)
            self.seen[h] = None
        while len(self.seen) > SEEN_LIMIT:
            self.seen.pop(next(iter(self.seen)))
        assert self.folder is not None
        with contextlib.suppress(OSError):
            _write_atomic(self.folder / "seen.json", json.dumps(list(self.seen)).encode("utf-8"))

    def _load_seen(self) -> list[str]:
        assert self.folder is not None
        try:
            value = json.loads((self.folder / "seen.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [h for h in value if isinstance(h, str)] if isinstance(value, list) else []

    # -- files ----------------------------------------------------------------------------

    def _path(self, prefix_hash: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{prefix_hash}{SUFFIX}"

    def _reject(self, path: Path, reason: str) -> None:
        path.unlink(missing_ok=True)
        self.events.append({"kind": "rebuilt", "file": str(path), "reason": reason})

    def _restore(self, prefix_hash: str, prefix: list[int]) -> bool:
        path = self._path(prefix_hash)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._reject(path, f"unreadable ({exc})")
            return False
        if not data.startswith(MAGIC):
            self._reject(path, "not a LightMem KV cache file")
            return False
        end = data.find(b"\n", len(MAGIC))
        try:
            header = json.loads(data[len(MAGIC) : end])
            if not isinstance(header, dict):
                raise ValueError("header is not an object")
        except ValueError:
            self._reject(path, "corrupt (unreadable header)")
            return False
        if header.get("model_sha256") != self.model_sha256:
            self._reject(path, "made with another model file")
            return False
        if header.get("seed") != self.seed.decode("utf-8"):
            self._reject(path, "made with another context size, block size or llama.cpp build")
            return False
        n = len(prefix)
        body = data[end + 1 :]
        ids_bytes, state = body[: 4 * n], body[4 * n :]
        if header.get("tokens") != n or len(ids_bytes) != 4 * n:
            self._reject(path, "corrupt (token count)")
            return False
        ids = [
            int.from_bytes(ids_bytes[i : i + 4], "little", signed=True) for i in range(0, 4 * n, 4)
        ]
        if ids != prefix:
            self._reject(path, "corrupt (its tokens are not the prefix its name says)")
            return False
        if len(state) != header.get("state_bytes") or (
            hashlib.sha256(state).hexdigest() != header.get("state_sha256")
        ):
            self._reject(path, "corrupt or truncated (state checksum)")
            return False
        import llama_cpp

        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_set_state_data(self.llm._ctx.ctx, buffer) != len(state):
            self.llm._ctx.kv_cache_clear()
            self.llm.n_tokens = 0
            self._reject(path, "refused by llama.cpp")
            return False
        self.llm.input_ids[:n] = prefix
        self.llm.n_tokens = n
        os.utime(path)  # recently used: evicted last
        return True

    def _save(self, prefix_hash: str, prefix: list[int]) -> bool:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = int(llama_cpp.llama_get_state_size(ctx))
        buffer = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_copy_state_data(ctx, buffer))
        state = bytes(buffer[:written])
        header = {
            "model_sha256": self.model_sha256,
            "seed": self.seed.decode("utf-8"),
            "tokens": len(prefix),
            "state_bytes": len(state),
            "state_sha256": hashlib.sha256(state).hexdigest(),
        }
        head = MAGIC + json.dumps(header).encode("utf-8") + b"\n"
        ids = b"".join(t.to_bytes(4, "little", signed=True) for t in prefix)
        if len(head) + len(ids) + len(state) > self.max_bytes:
            self.events.append(
                {
                    "kind": "too_big",
                    "file": str(self._path(prefix_hash)),
                    "reason": f"a state of {len(state)} bytes exceeds kv_cache_max_mb",
                }
            )
            return False
        try:
            _write_atomic(self._path(prefix_hash), head + ids + state)
        except OSError as exc:
            self.events.append({"kind": "unwritable", "file": str(self.folder), "reason": str(exc)})
            return False
        self._evict()
        return True

    def _evict(self) -> None:
        assert self.folder is not None
        files = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


def cache_bytes(folder: Path) -> tuple[int, int]:
    """(files, bytes) of the KV cache files in ``folder``."""
    count = total = 0
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            total += path.stat().st_size
        except OSError:
            continue
        count += 1
    return count, total
