"""Training, checkpoints and evaluation on CPU: smoke runs per modality, a planted signal, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from sqlalchemy import Engine, select

from annotator.errors import TrainingError
from annotator.store import TrainingRun, session_scope
from model.checkpoint import load_checkpoint
from model.config import TrainConfig
from model.train import evaluate_checkpoint, train

if TYPE_CHECKING:
    from tests.conftest import Cli


@pytest.mark.parametrize("modality", ["both", "image", "audio"])
def test_one_batch_smoke_run_then_evaluate_reproduces_the_metrics(
    modality: str, planted_export: Path, feature_cache_dir: Path, tiny_config: TrainConfig, tmp_path: Path
) -> None:
    config = tiny_config.with_(modality=modality, limit=8, batch_size=8)
    result = train(planted_export, tmp_path / "run", config, cache_dir=feature_cache_dir, log=None)
    assert len(result.history) == 1 and result.test_metrics["samples"] == 8
    for name in ("checkpoint.pt", "metrics.json", "confusion.png", "curves.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    ckpt = load_checkpoint(result.checkpoint_path)
    assert ckpt.config == config and ckpt.epoch == 1 and len(ckpt.classes) == 13
    assert ckpt.optimizer_state is not None and ckpt.metrics["test"] == result.test_metrics
    assert ckpt.model_state["audio_std"].flatten().tolist() == pytest.approx(ckpt.audio_stats["std"])
    assert (ckpt.audio_stats["std"] != [1.0] * 64) == (modality != "image")  # fitted only when sound is used
    # evaluate decodes the files itself (no cache) and still gets exactly the same numbers
    again = evaluate_checkpoint(result.checkpoint_path, planted_export, split="test", device="cpu")
    assert again == result.test_metrics
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["test"]["confusion_matrix"] == result.test_metrics["confusion_matrix"]


@pytest.mark.slow
def test_fusion_beats_chance_clearly_on_a_planted_signal(
    planted_export: Path, feature_cache_dir: Path, tiny_config: TrainConfig, tmp_path: Path
) -> None:
    config = tiny_config.with_(epochs=4, batch_size=16, audio_width=8)
    result = train(planted_export, tmp_path / "run", config, cache_dir=feature_cache_dir, log=None)
    chance = 1 / 13
    assert result.test_metrics["accuracy"] > 4 * chance, result.history
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_unusable_backbone_weights_are_refused_with_the_file_named(
    planted_export: Path, tiny_config: TrainConfig, tmp_path: Path
) -> None:
    bad = tmp_path / "weights.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(TrainingError, match="weights.pt"):
        train(planted_export, tmp_path / "run", tiny_config.with_(image_weights=str(bad), use_cache=False), log=None)


def test_local_image_weights_are_loaded(
    planted_export: Path, feature_cache_dir: Path, tiny_config: TrainConfig, tmp_path: Path
) -> None:
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pt")
    config = tiny_config.with_(modality="image", image_weights=str(tmp_path / "r18.pt"), limit=4, lr=1e-12)
    result = train(planted_export, tmp_path / "run", config, cache_dir=feature_cache_dir, log=None)
    state = load_checkpoint(result.checkpoint_path).model_state
    # lr 1e-12: the trained stem is still (within float noise) the loaded one
    assert torch.allclose(state["image.net.conv1.weight"], reference.conv1.weight, atol=1e-6)


def test_cli_train_on_a_bare_folder_then_evaluate_json(
    cli: Cli, planted_export: Path, feature_cache_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    out = cli(
        "train",
        str(planted_export),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--seed",
        "7",
        "--image-size",
        "32",
        "--audio-width",
        "4",
        "--limit",
        "8",
        "--cache-dir",
        str(feature_cache_dir),
    )
    assert "weighted f1" in out.stdout and f"run dir: {run}" in out.stdout
    assert "epoch 1/1" in out.stderr and "samples/s" in out.stderr and "data wait" in out.stderr
    assert not cli.db_path.exists()  # training needs no store and creates none
    evaluated = cli(
        "evaluate", str(run / "checkpoint.pt"), str(planted_export), "--split", "test", "--json", "--device", "cpu"
    )
    payload = json.loads(evaluated.stdout)
    saved = json.loads((run / "metrics.json").read_text())["test"]
    assert payload["split"] == "test" and payload["weighted_f1"] == saved["weighted_f1"]
    assert payload["confusion_matrix"] == saved["confusion_matrix"]


def test_cli_records_a_training_run_when_the_store_exists(
    cli: Cli, engine: Engine, planted_export: Path, feature_cache_dir: Path, tmp_path: Path
) -> None:
    cli(
        "train",
        str(planted_export),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--image-size",
        "32",
        "--audio-width",
        "4",
        "--limit",
        "4",
        "--modality",
        "audio",
        "--cache-dir",
        str(feature_cache_dir),
    )
    with session_scope(engine) as session:
        runs = session.scalars(select(TrainingRun)).all()
    assert len(runs) == 1 and runs[0].params["modality"] == "audio"
    assert runs[0].checkpoint_path.endswith("checkpoint.pt") and "accuracy" in runs[0].metrics["test"]
    assert runs[0].dataset_manifest_sha256 is not None
    assert runs[0].metrics["test_window"]["epochs"] == [1] and runs[0].metrics["data_path"]


def test_cli_errors_are_one_sentence(cli: Cli, tmp_path: Path) -> None:
    out = cli("train", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cpu", expect=1)
    assert out.stderr.startswith("Error: no dataset at") and "Traceback" not in out.output
    out = cli("evaluate", str(tmp_path / "missing.pt"), str(tmp_path), expect=1)
    assert "checkpoint" in out.stderr and "does not exist" in out.stderr


def test_cli_paper_preset_builds_the_authors_head_and_evaluate_reproduces_it(
    cli: Cli, planted_export: Path, feature_cache_dir: Path, tmp_path: Path
) -> None:
    """The done-when run, shrunk for two shared CPU cores (--limit 4, 32 px; by hand: --limit 24 --image-size 64)."""
    run = tmp_path / "paper"
    args = ["--preset", "paper", "--epochs", "1", "--limit", "4", "--image-size", "32", "--device", "cpu"]
    out = cli("train", str(planted_export), "--out", str(run), *args, "--cache-dir", str(feature_cache_dir))
    assert "mean ± std" in out.stdout and "data path: resident on cpu" in out.stderr
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt.model_state["head.weight"].shape == (13, 4096)
    assert ckpt.config.preset == "paper" and ckpt.config.audio_arch == "resnet50"
    assert ckpt.config.lr_milestones == (30, 60, 90) and ckpt.config.augment and ckpt.config.image_size == 32
    evaluated = cli("evaluate", str(run / "checkpoint.pt"), str(planted_export), "--json", "--device", "cpu")
    payload = json.loads(evaluated.stdout)
    saved = json.loads((run / "metrics.json").read_text())["test"]
    assert {k: v for k, v in payload.items() if k in saved} == saved


def test_cli_flags_override_the_preset_and_resume_continues_a_run(
    cli: Cli, planted_export: Path, feature_cache_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    common = ["--device", "cpu", "--image-size", "32", "--audio-width", "4", "--cache-dir", str(feature_cache_dir)]
    cli("train", str(planted_export), "--out", str(run), "--epochs", "1", "--limit", "8", "--lr-milestones", "1",
        "--no-augment", "--resident", "off", *common)  # fmt: skip
    config = load_checkpoint(run / "last.pt").config
    assert config.preset == "small" and config.lr_milestones == (1,) and config.resident == "off"
    out = cli("train", str(planted_export), "--resume", str(run), "--epochs", "2", *common)
    assert "resuming" in out.stderr and "epoch 2/2" in out.stderr and "epoch 1/2" not in out.stderr
    assert "data path: loader" in out.stderr
    assert [h["lr"] for h in load_checkpoint(run / "last.pt").history] == [1e-4, 1e-5]
    refused = cli("train", str(planted_export), "--resume", str(run), "--lr", "0.1", *common, expect=1)
    assert "cannot change lr" in refused.stderr
