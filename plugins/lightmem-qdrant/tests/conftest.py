"""Fixtures: where the tests keep their stores."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

#: Set to 1 to keep test stores on the real disk (tmp_path) instead of a RAM file system.
ENV_DISK = "LIGHTMEM_QDRANT_TEST_DISK"


@pytest.fixture
def store_dir(tmp_path):
    """A fresh directory for stores: on /dev/shm when there is one, because Qdrant Edge fsyncs
    its write-ahead log and a busy disk makes each test take a second instead of milliseconds.
    The engines do the same work either way."""
    shm = Path("/dev/shm")
    if os.environ.get(ENV_DISK) == "1" or not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="lightmem-qdrant-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
