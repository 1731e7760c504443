"""Fixtures of the model tests: one generated ADVANCE-layout export per session and tiny, fast configs.

The generator (advance_generator.py, beside this file) writes real JPEGs and WAVs with a planted class signal.
Tests use small images (the readers resize) and a narrow audio CNN so they run on two shared CPU cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from advance_generator import write_export  # noqa: E402

from model.config import TrainConfig  # noqa: E402


@pytest.fixture(scope="session")
def planted_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """156 pairs (4 recordings per class, two of them with 4 offset copies), 96×96 images, 10 s clips."""
    root = tmp_path_factory.mktemp("planted") / "export"
    write_export(root, per_class=4, offsets_every=2, image_size=96, seed=3)
    return root


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture
def tiny_config() -> TrainConfig:
    """ResNet-18 on 32×32 images and a 4-channel audio CNN: a step takes well under a second on CPU."""
    return TrainConfig(image_size=32, audio_width=4, epochs=1, batch_size=8, lr=3e-3, device="cpu", seed=5, workers=0)
