"""`annotator train`: the fusion classifier (or a single-modality baseline) on an export or the release."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from annotator.cli.common import AppState, print_json, progress_bar, state, stderr, stdout
from annotator.errors import StoreError

if TYPE_CHECKING:
    from model.train import TrainResult


def _milestones(text: str | None) -> tuple[int, ...] | None:
    """``30,60,90`` → (30, 60, 90); ``none`` or an empty string → () (a constant rate)."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected epochs separated by commas (e.g. 30,60,90), not {text!r}") from None


def train_command(
    ctx: typer.Context,
    dataset: str = typer.Argument(
        ...,
        metavar="DATASET",
        help="An export folder, the ADVANCE release (vision/, sound/), or WebDataset shards: a shard folder, "
        "its http(s) URL, or a brace pattern such as shards/train-{000000..000009}.tar.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="RUN_DIR for checkpoint.pt, last.pt, metrics.json(l), confusion.png, curves.png "
        "[default: runs/PRESET-DATE-TIME].",
    ),
    preset: str = typer.Option("small", "--preset", help="small (CPU-sized) or paper (the authors' protocol)."),
    resume: Path | None = typer.Option(
        None, "--resume", metavar="RUN_DIR", help="Continue the run in RUN_DIR from its last.pt (same settings)."
    ),
    modality: str | None = typer.Option(None, "--modality", help="both (fusion), image or audio [preset: both]."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Maximum number of epochs [preset]."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Global batch, split across ranks."),
    device: str | None = typer.Option(None, "--device", help="auto (CUDA when present), cuda or cpu."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="DataLoader workers [default: by device]."),
    seed: int | None = typer.Option(None, "--seed", help="Seeds the initial weights, batch order, augmentation."),
    image_arch: str | None = typer.Option(None, "--image-arch", help="resnet18, resnet50 or resnet101 [preset]."),
    image_size: int | None = typer.Option(
        None, "--image-size", min=32, help="Side of the square image input [small: 256 on CUDA, 128 on CPU]."
    ),
    audio_width: int | None = typer.Option(
        None, "--audio-width", min=1, help="Channels of the small audio CNN's first stage [32 CUDA, 16 CPU]."
    ),
    image_weights: str | None = typer.Option(
        None, "--image-weights", help="imagenet (torchvision's weights) or PATH of a local state dict."
    ),
    image_input: str | None = typer.Option(
        None, "--image-input", help="imagenet (mean/std normalised) or raw (0–255, the authors' AID weights)."
    ),
    audio_weights: Path | None = typer.Option(
        None, "--audio-weights", help="A checkpoint.pt of this tool or the authors' ResNet-50 state dict."
    ),
    features: str | None = typer.Option(None, "--features", help="Log-mel definition: default or paper."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate [small: 1e-4, paper: 1e-5]."),
    lr_milestones: str | None = typer.Option(
        None, "--lr-milestones", help="Epochs after which the rate drops ×0.1, e.g. 30,60,90 (none: constant)."
    ),
    augment: bool | None = typer.Option(
        None, "--augment/--no-augment", help="Flip, brightness and colour augmentation of training images."
    ),
    resident: str | None = typer.Option(
        None, "--resident", help="Keep the cached features on the device: auto (when they fit), on or off."
    ),
    patience: int | None = typer.Option(None, "--patience", min=1, help="Stop after this many epochs without gain."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many pairs per split (quick runs)."),
    split_seed: int | None = typer.Option(None, "--split-seed", help="Seed of the computed split (release layout)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Decode files every epoch instead of caching features."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="ANNOTATOR_CACHE", help="Feature cache [default: ~/.cache/annotator/features]."
    ),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="Train in float32 on CUDA instead of bf16 autocast."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as one JSON object."),
) -> None:
    """Train the classifier: image ResNet + audio network on log-mels, fused by concatenation, selected on val F1.

    The preset decides every setting; each flag given overrides it, and the checkpoint records the result.
    Writes RUN_DIR/checkpoint.pt (best epoch), last.pt, metrics.jsonl, metrics.json, confusion.png and
    curves.png, prints the test metrics at the best epoch and their mean ± std over it and the five after, and
    records the run in the store when one exists. Several GPUs: `torchrun --nproc_per_node N -m annotator train`;
    on shards each process then reads only its own (by shard when a split has as many shards as processes,
    else every process reads the split and keeps every N-th sample).

    Example: annotator train export/ --out runs/fusion --epochs 2 --batch-size 16 --device cpu --seed 7

    Example: torchrun --nproc_per_node 8 -m annotator train 'http://host/ds/train-{000000..000031}.tar' --out runs/a
    """
    from annotator.cli.evaluate import metrics_table, window_table
    from model.presets import resolve_config
    from model.train import resume_config, train

    app_state = state(ctx)
    overrides: dict[str, Any] = {
        "modality": modality,
        "image_arch": image_arch,
        "image_size": image_size,
        "audio_width": audio_width,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "patience": patience,
        "seed": seed,
        "split_seed": split_seed,
        "device": device,
        "workers": workers,
        "use_cache": False if no_cache else None,
        "bf16": False if no_bf16 else None,
        "limit": limit,
        "image_weights": image_weights,
        "image_input": image_input,
        "audio_weights": str(audio_weights) if audio_weights else None,
        "features": features,
        "lr_milestones": _milestones(lr_milestones),
        "augment": augment,
        "resident": resident,
    }
    if resume is not None:
        if out is not None and out.resolve() != resume.resolve():
            raise typer.BadParameter("--out and --resume name different folders; --resume continues in RUN_DIR")
        out, config = resume, resume_config(resume, overrides)
    else:
        config = resolve_config(preset, overrides)
        out = out or Path("runs") / f"{preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    log = None if app_state.quiet else lambda message: stderr.print(message, markup=False, highlight=False)
    with progress_bar(app_state, "Decoding features into the cache", total=None) as bar:

        def on_cache_progress(done: int, total: int) -> None:
            bar.update(bar.task_ids[0], completed=done, total=total, visible=done < total)

        result = train(
            dataset,
            out,
            config,
            cache_dir=cache_dir,
            log=log,
            on_cache_progress=on_cache_progress,
            resume=resume is not None,
        )
    if not result.is_main:
        return
    recorded = _record_run(app_state, dataset, result, config.to_dict())
    if json_out:
        print_json(_summary(result, recorded))
    else:
        for table in metrics_table(result.test_metrics, f"Test metrics (best epoch {result.best_epoch})"):
            stdout.print(table)
        stdout.print(window_table(result.test_metrics, result.test_window))
        stdout.print(f"run dir: {out}", markup=False, highlight=False)
    if recorded and not app_state.quiet:
        stderr.print("recorded the run in the store", markup=False)


def _summary(result: TrainResult, recorded: bool) -> dict[str, Any]:
    """The `--json` summary: where the run went, the best epoch's metrics, the windowed report and the data."""
    return {
        "run_dir": result.run_dir,
        "checkpoint": result.checkpoint_path,
        "best_epoch": result.best_epoch,
        "test": result.test_metrics,
        "test_window": result.test_window,
        "val": result.val_metrics,
        "epochs": len(result.history),
        "data_path": result.data_path,
        "dataset": result.dataset,
        "recorded": recorded,
    }


def _record_run(app_state: AppState, dataset: str, result: TrainResult, params: dict[str, Any]) -> bool:
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
            # A URL or brace pattern is recorded as the text given; a local folder by its resolved path.
            record_training_run(session, dataset, result, params)
    except StoreError:
        return False
    return True
