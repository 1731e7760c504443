"""`annotator train`: the fusion classifier (or a single-modality baseline) on an export or the release."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from annotator.cli.common import AppState, progress_bar, state, stderr, stdout
from annotator.errors import StoreError
from model.config import TrainConfig

if TYPE_CHECKING:
    from model.train import TrainResult


def train_command(
    ctx: typer.Context,
    dataset: Path = typer.Argument(
        ..., metavar="DATASET", help="An export folder or the ADVANCE release (vision/, sound/)."
    ),
    out: Path = typer.Option(..., "--out", help="RUN_DIR for checkpoint.pt, metrics.json, confusion.png, curves.png."),
    modality: str = typer.Option("both", "--modality", help="both (fusion), image or audio."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Maximum number of epochs."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Global batch (split across torchrun ranks)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cuda or cpu."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="DataLoader workers [default: by device]."),
    seed: int = typer.Option(0, "--seed", help="Seeds the initial weights and the batch order."),
    image_arch: str = typer.Option("resnet18", "--image-arch", help="resnet18, resnet50 or resnet101 (the paper)."),
    image_size: int | None = typer.Option(
        None, "--image-size", min=32, help="Side of the square image input [default: 256 on CUDA, 128 on CPU]."
    ),
    audio_width: int | None = typer.Option(
        None, "--audio-width", min=1, help="Channels of the audio CNN's first stage [default: 32 CUDA, 16 CPU]."
    ),
    image_weights: Path | None = typer.Option(None, "--image-weights", help="Local state dict for the image ResNet."),
    audio_weights: Path | None = typer.Option(None, "--audio-weights", help="Local state dict for the audio CNN."),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate (the paper: 1e-5 with pretrained branches)."),
    patience: int = typer.Option(5, "--patience", min=1, help="Stop after this many epochs without a better val F1."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many pairs per split (quick runs)."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the computed split (release without metadata)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Decode files every epoch instead of caching features."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="ANNOTATOR_CACHE", help="Feature cache [default: ~/.cache/annotator/features]."
    ),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="Train in float32 on CUDA instead of bf16 autocast."),
) -> None:
    """Train the classifier: image ResNet + audio CNN on log-mels, fused by concatenation, selected on val F1.

    Writes RUN_DIR/checkpoint.pt, metrics.json, confusion.png and curves.png, prints the test metrics, and records
    the run in the store when one exists (a bare dataset folder needs no store). Several GPUs:
    `torchrun --nproc_per_node N -m annotator train ...`.

    Example: annotator train export/ --out runs/fusion --epochs 2 --batch-size 16 --device cpu --seed 7
    """
    from annotator.cli.evaluate import metrics_table
    from model.train import train

    app_state = state(ctx)
    config = TrainConfig(
        modality=modality,
        image_arch=image_arch,
        image_size=image_size,
        audio_width=audio_width,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        seed=seed,
        split_seed=split_seed,
        device=device,
        workers=workers,
        use_cache=not no_cache,
        bf16=not no_bf16,
        limit=limit,
        image_weights=str(image_weights) if image_weights else None,
        audio_weights=str(audio_weights) if audio_weights else None,
    )
    log = None if app_state.quiet else lambda message: stderr.print(message, markup=False, highlight=False)
    with progress_bar(app_state, "Decoding features into the cache", total=None) as bar:

        def on_cache_progress(done: int, total: int) -> None:
            bar.update(bar.task_ids[0], completed=done, total=total, visible=done < total)

        result = train(dataset, out, config, cache_dir=cache_dir, log=log, on_cache_progress=on_cache_progress)
    if not result.is_main:
        return
    for table in metrics_table(result.test_metrics, f"Test metrics (best epoch {result.best_epoch})"):
        stdout.print(table)
    recorded = _record_run(app_state, dataset, result, config.to_dict())
    stdout.print(f"run dir: {out}", markup=False, highlight=False)
    if recorded and not app_state.quiet:
        stderr.print("recorded the run in the store", markup=False)


def _record_run(app_state: AppState, dataset: Path, result: TrainResult, params: dict[str, Any]) -> bool:
    """Record the run when a store exists; training on a bare dataset folder never creates one.

    A store that cannot be opened (a server database that is down or not initialised) is skipped the same way:
    RUN_DIR already holds everything the run produced.
    """
    from annotator.store import session_scope
    from annotator.training import record_training_run, store_exists

    if not store_exists(app_state.location):
        return False
    try:
        with app_state.store() as engine, session_scope(engine) as session:
            record_training_run(session, dataset, result, params)
    except StoreError:
        return False
    return True
