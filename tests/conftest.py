"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny model bundle (model.onnx + vantage.json) with the bundle-graph contract."""
    from serve_fixtures import make_tiny_bundle  # imports torch only when a test needs the bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")
