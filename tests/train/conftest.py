"""Fixtures of the training tests: a session-wide tiny cache and a workspace that links it."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfake_cli.workspace import Workspace
from helpers.traincache import make_cache


@pytest.fixture(scope="session")
def cache_file(tmp_path_factory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache") / "ffpp.h5")


@pytest.fixture
def workspace(tmp_path, cache_file) -> Workspace:
    ws = Workspace(tmp_path / "ws").ensure()
    (ws.data_dir / "ffpp.h5").symlink_to(cache_file)
    return ws
