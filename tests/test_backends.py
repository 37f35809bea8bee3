"""Backends are built once, whichever threads ask for them first."""

from __future__ import annotations

import threading
import time

from lightmem_hookspecs import hookimpl

from lightmem_core import LightMemory
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config


class SlowSegmenterPlugin:
    """A topic segmenter whose factory is slow and counts its builds and closes."""

    def __init__(self) -> None:
        self.built = 0
        self.closed = 0

    @hookimpl
    def lightmem_register_backends(self, registrar):
        plugin = self

        class Segmenter:
            def segment(self, messages):
                return []

            def close(self):
                plugin.closed += 1

        def factory(options, context):
            plugin.built += 1
            time.sleep(0.2)  # long enough for every thread to ask meanwhile
            return Segmenter()

        registrar.topic_segmenter("slow", factory)


def test_a_backend_asked_for_by_several_threads_at_once_is_built_once(tmp_path):
    import lightmem_core.builtin as builtin

    plugin = SlowSegmenterPlugin()
    host = fresh_host(builtin, ReferencePlugin())
    host.register(plugin, "slow")
    config = reference_config(tmp_path, topic_segment=True, topic_segmenter={"model_name": "slow"})
    mem = LightMemory(config, host=host)
    got: list[object] = []
    start = threading.Barrier(6)

    def ask() -> None:
        start.wait()
        got.append(mem.backends.topic_segmenter())

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert plugin.built == 1
    assert len({id(b) for b in got}) == 1
    mem.close()
    assert plugin.closed == 1  # the one built is closed; none was dropped unclosed
