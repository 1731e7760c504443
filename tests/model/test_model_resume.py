"""Runs you can resume and read: last.pt and --resume, metrics.jsonl, the data path, seeded augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from annotator.errors import TrainingError
from model.checkpoint import load_checkpoint
from model.config import TrainConfig
from model.train import TrainResult, resume_config, train

#: Per-epoch fields that measure time, not learning: they differ between any two runs.
TIMING = ("samples_per_s", "data_wait_s", "data_wait", "data_wait_pct", "seconds")


@pytest.fixture
def config(tiny_config: TrainConfig) -> TrainConfig:
    """Three epochs on 16 pairs per split, with a schedule that changes the rate after epoch 2."""
    return tiny_config.with_(limit=16, epochs=3, patience=3, lr_milestones=(2,), lr_gamma=0.5)


def _learning(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def _run(export: Path, run: Path, config: TrainConfig, cache: Path, **kwargs: bool) -> TrainResult:
    return train(export, run, config, cache_dir=cache, log=None, **kwargs)


def _same_weights(a: Path, b: Path) -> None:
    left, right = load_checkpoint(a).model_state, load_checkpoint(b).model_state
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


def test_resume_after_two_epochs_ends_exactly_like_three_straight(
    planted_export: Path, feature_cache_dir: Path, config: TrainConfig, tmp_path: Path
) -> None:
    straight = _run(planted_export, tmp_path / "straight", config, feature_cache_dir)
    _run(planted_export, tmp_path / "split", config.with_(epochs=2), feature_cache_dir)
    assert load_checkpoint(tmp_path / "split" / "last.pt").epoch == 2
    resumed_config = resume_config(tmp_path / "split", {"epochs": 3, "lr": None})
    assert resumed_config == config.for_device("cpu")
    resumed = _run(planted_export, tmp_path / "split", resumed_config, feature_cache_dir, resume=True)
    assert [h["lr"] for h in resumed.history] == [3e-3, 3e-3, 1.5e-3]  # the schedule resumed where it was
    assert _learning(resumed.history) == _learning(straight.history)
    assert resumed.test_metrics == straight.test_metrics and resumed.best_epoch == straight.best_epoch
    assert resumed.test_window == straight.test_window
    _same_weights(tmp_path / "split" / "last.pt", tmp_path / "straight" / "last.pt")
    _same_weights(tmp_path / "split" / "checkpoint.pt", tmp_path / "straight" / "checkpoint.pt")
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_resume_refuses_settings_that_cannot_change(
    planted_export: Path, feature_cache_dir: Path, config: TrainConfig, tmp_path: Path
) -> None:
    _run(planted_export, tmp_path / "run", config.with_(epochs=1, limit=8), feature_cache_dir)
    with pytest.raises(TrainingError, match="cannot change lr"):
        resume_config(tmp_path / "run", {"lr": 0.5, "epochs": 2})
    with pytest.raises(TrainingError, match="last.pt does not exist"):
        resume_config(tmp_path / "elsewhere", {})


def test_epoch_log_data_path_and_windowed_report(
    planted_export: Path, feature_cache_dir: Path, config: TrainConfig, tmp_path: Path
) -> None:
    result = _run(planted_export, tmp_path / "run", config, feature_cache_dir)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("train_loss", "val_loss", "val_weighted_f1", "lr", "samples_per_s", "data_wait_s", "data_wait_pct"):
        assert all(isinstance(r[key], float) for r in rows), key
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data_path"].startswith("resident on cpu") and result.data_path == metrics["data_path"]
    window = metrics["test_window"]
    assert window["epochs"] == list(range(result.best_epoch, 4))
    f1 = [r["test_weighted_f1"] for r in rows if r["epoch"] in window["epochs"]]
    assert window["weighted_f1"]["mean"] == pytest.approx(sum(f1) / len(f1))
    assert metrics["test"]["weighted_f1"] == rows[result.best_epoch - 1]["test_weighted_f1"]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").metrics["test_window"] == window


def test_resident_and_loader_paths_train_identically(
    planted_export: Path, feature_cache_dir: Path, config: TrainConfig, tmp_path: Path
) -> None:
    config = config.with_(epochs=2)
    resident = _run(planted_export, tmp_path / "resident", config.with_(resident="on"), feature_cache_dir)
    loader = _run(planted_export, tmp_path / "loader", config.with_(resident="off"), feature_cache_dir)
    assert resident.data_path.startswith("resident on cpu")
    assert loader.data_path == "loader (0 workers, feature cache)"
    assert _learning(resident.history) == _learning(loader.history)
    assert resident.test_metrics == loader.test_metrics
    with pytest.raises(TrainingError, match="needs the feature cache"):
        _run(planted_export, tmp_path / "x", config.with_(resident="on", use_cache=False), feature_cache_dir)


def test_augmented_runs_repeat_exactly_and_differ_from_plain_ones(
    planted_export: Path, feature_cache_dir: Path, config: TrainConfig, tmp_path: Path
) -> None:
    config = config.with_(epochs=1, modality="image")
    first = _run(planted_export, tmp_path / "a", config.with_(augment=True), feature_cache_dir)
    second = _run(planted_export, tmp_path / "b", config.with_(augment=True), feature_cache_dir)
    plain = _run(planted_export, tmp_path / "c", config, feature_cache_dir)
    assert _learning(first.history) == _learning(second.history)
    _same_weights(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")
    assert first.history[0]["train_loss"] != plain.history[0]["train_loss"]
