"""Self-describing checkpoints: weights, optimiser state, config, class list, normalisation, epoch, metrics.

A run writes two: ``checkpoint.pt`` (the best epoch, what ``evaluate`` reads) and ``last.pt`` (the latest
epoch, with the scheduler, the random number generators and the loop's state, what ``--resume`` reads).
``evaluate`` needs nothing but this file and a dataset. Everything inside is tensors or plain Python types, so
it loads with ``torch.load(weights_only=True)`` (no pickled code runs when a checkpoint is opened).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from annotator.errors import TrainingError
from annotator.files import atomic_path
from annotator.vocabulary import CLASS_ORDER
from model.config import TrainConfig

CHECKPOINT_FORMAT = "annotator-fusion/1"


@dataclass
class Checkpoint:
    """Everything a trained model needs to be evaluated or resumed (see the module docstring)."""

    config: TrainConfig
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    classes: list[str]
    audio_stats: dict[str, list[float]]
    epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    dataset: dict[str, Any] = field(default_factory=dict)
    #: Only in ``last.pt``: the LR scheduler's state, RNG states (:func:`rng_state`) and the loop's own state
    #: (best epoch and score, epochs without improvement, data path).
    scheduler_state: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    loop: dict[str, Any] = field(default_factory=dict)


def rng_state() -> dict[str, Any]:
    """The states of torch's (CPU and CUDA), numpy's and Python's global generators, as loadable plain types."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only when as many GPUs are visible)."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically (temp file beside it, then rename): a crash never leaves half a checkpoint."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": checkpoint.config.to_dict(),
        "model": checkpoint.model_state,
        "optimizer": checkpoint.optimizer_state,
        "classes": list(checkpoint.classes),
        "audio_stats": checkpoint.audio_stats,
        "epoch": checkpoint.epoch,
        "metrics": checkpoint.metrics,
        "history": checkpoint.history,
        "dataset": checkpoint.dataset,
        "scheduler": checkpoint.scheduler_state,
        "rng": checkpoint.rng,
        "loop": checkpoint.loop,
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; refuse other files with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises assorted types for files that are not checkpoints
        raise TrainingError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not an annotator checkpoint (expected format {CHECKPOINT_FORMAT})")
    classes = list(payload["classes"])
    if classes != [c.value for c in CLASS_ORDER]:
        raise TrainingError(f"{path} was trained on classes {classes}, not this version's 13-class vocabulary")
    return Checkpoint(
        config=TrainConfig.from_dict(payload["config"]),
        model_state=payload["model"],
        optimizer_state=payload.get("optimizer"),
        classes=classes,
        audio_stats=payload.get("audio_stats", {}),
        epoch=int(payload.get("epoch", 0)),
        metrics=payload.get("metrics", {}),
        history=list(payload.get("history", [])),
        dataset=payload.get("dataset", {}),
        scheduler_state=payload.get("scheduler"),
        rng=payload.get("rng"),
        loop=payload.get("loop", {}),
    )
