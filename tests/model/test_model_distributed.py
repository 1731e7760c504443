"""DistributedDataParallel really runs: torchrun with two CPU processes (gloo) against one process.

The two runs see the same global batches with BatchNorm statistics over the whole global batch (see
model.distributed and model.batchnorm): one step's gradient is the single-process one (checked exactly in
float64 below). Over an epoch, float32 summation order still differs, and Adam's first updates (≈ lr·sign(g))
amplify that for near-zero gradients, so end-to-end metrics are compared within a tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.distributed import GlobalBatchSampler
from model.train import evaluate_checkpoint

ARGS = [
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
    "24",
    "--workers",
    "0",
    "--lr",
    "1e-3",
]


def test_ranks_split_every_global_batch_exactly() -> None:
    single = list(GlobalBatchSampler(21, 8, seed=3))
    ranks = [list(GlobalBatchSampler(21, 8, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert [len(b) for b in single] == [8, 8, 5]
    for k, batch in enumerate(single):
        assert sorted(ranks[0][k] + ranks[1][k]) == sorted(batch)
    tiny_tail = GlobalBatchSampler(17, 8, seed=3, world_size=2)  # a last batch of 1 cannot feed two ranks
    assert len(tiny_tail) == 2


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process(
    planted_export: Path, feature_cache_dir: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "ANNOTATOR_DB": str(tmp_path / "no-store.db"),
        "ANNOTATOR_CACHE": str(feature_cache_dir),
        "OMP_NUM_THREADS": "1",
    }
    repo = Path(__file__).resolve().parents[2]
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    _run([sys.executable, "-m", "annotator", "train", str(planted_export), "--out", str(single_dir), *ARGS], repo, env)
    ddp = _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "annotator",
            "train",
            str(planted_export),
            "--out",
            str(ddp_dir),
            *ARGS,
        ],
        repo,
        env,
    )
    assert "× 2 processes" in ddp.stderr
    assert ddp.stdout.count("run dir:") == 1  # only rank 0 prints and writes
    single = json.loads((single_dir / "metrics.json").read_text())
    both = json.loads((ddp_dir / "metrics.json").read_text())
    assert both["test"]["samples"] == single["test"]["samples"] == 24  # no sample lost or counted twice
    assert both["history"][0]["train_loss"] == pytest.approx(single["history"][0]["train_loss"], rel=0.05)
    for key in ("accuracy", "weighted_f1"):
        assert both["test"][key] == pytest.approx(single["test"][key], abs=0.15)
        assert both["val"][key] == pytest.approx(single["val"][key], abs=0.15)
    # The all-reduced test metrics of the two-process run are exactly what one process computes from its model.
    alone = evaluate_checkpoint(ddp_dir / "checkpoint.pt", planted_export, device="cpu")
    assert alone["confusion_matrix"] == both["test"]["confusion_matrix"]
    assert not (tmp_path / "no-store.db").exists()


@pytest.mark.slow
def test_a_two_rank_step_gives_exactly_the_single_process_gradient() -> None:
    """Cross-rank BatchNorm + loss scaling: in float64 the DDP gradient equals the full-batch one."""
    script = Path(__file__).with_name("ddp_gradient_check.py")
    done = _run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        Path(__file__).resolve().parents[2],
        {**os.environ, "OMP_NUM_THREADS": "1"},
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["max_relative_grad_difference"] < 1e-9
