"""Fixtures of the export tests: a tile pyramid beside the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.export.world import write_pattern_tiles


@pytest.fixture(scope="session")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small XYZ tile folder around the test points (read only, shared by all tests)."""
    return write_pattern_tiles(tmp_path_factory.mktemp("tiles") / "xyz")
