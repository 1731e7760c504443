"""`annotator evaluate`: a saved classifier's metrics on one split of a dataset (SPEC §9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from annotator.cli.common import state, stderr, stdout


def metrics_table(metrics: dict[str, Any], title: str) -> tuple[Table, Table]:
    """Rich tables: the summary scores, then precision/recall/F1/support per class."""
    from model.metrics import SUMMARY_KEYS

    summary = Table(title=title)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_row("samples", str(metrics["samples"]))
    for key in SUMMARY_KEYS:
        summary.add_row(key.replace("_", " "), f"{metrics[key]:.4f}")
    per_class = Table(title="Per class")
    for column in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, row in metrics["per_class"].items():
        if row["support"] or row["precision"]:
            per_class.add_row(
                name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"])
            )
    return summary, per_class


def window_table(best: dict[str, Any], window: dict[str, Any]) -> Table:
    """The test scores at the best epoch beside their mean ± std over it and the five after (the authors' report)."""
    from model.metrics import SUMMARY_KEYS

    epochs = window.get("epochs", [])
    span = f"epochs {epochs[0]}–{epochs[-1]}" if len(epochs) > 1 else f"epoch {epochs[0]}" if epochs else "none"
    table = Table(title=f"Test metrics: best epoch, and mean ± std over the best and the five after ({span})")
    for column in ("metric", "best epoch", "mean ± std"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in SUMMARY_KEYS:
        cell = window.get(key, {"mean": 0.0, "std": 0.0})
        table.add_row(key.replace("_", " "), f"{best[key]:.4f}", f"{cell['mean']:.4f} ± {cell['std']:.4f}")
    return table


def evaluate_command(
    ctx: typer.Context,
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="checkpoint.pt written by `annotator train`."),
    dataset: str = typer.Argument(
        ...,
        metavar="DATASET",
        help="An export folder, the ADVANCE release (vision/, sound/), or shards (a folder, URL or brace pattern).",
    ),
    split: str = typer.Option("test", "--split", help="Which split to score: train, val or test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with all metrics instead of tables."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cuda or cpu."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="DataLoader worker processes."),
) -> None:
    """Score a trained classifier on one split: accuracy, weighted and macro P/R/F1, per-class scores.

    The checkpoint carries everything else (config, class list, normalisation), and the split is computed as in
    training, so the training dataset's test split reproduces the run's test metrics.

    Example: annotator evaluate runs/fusion/checkpoint.pt export/ --split test --json
    """
    from model.train import evaluate_checkpoint

    app_state = state(ctx)
    metrics = evaluate_checkpoint(checkpoint, dataset, split=split, device=device, workers=workers)
    if as_json:
        payload = {"checkpoint": str(checkpoint), "dataset": str(dataset), "split": split, **metrics}
        typer.echo(json.dumps(payload))
        return
    for table in metrics_table(metrics, f"{split} split of {dataset}"):
        stdout.print(table)
    if not app_state.quiet:
        stderr.print(f"checkpoint {checkpoint}", markup=False, highlight=False)
