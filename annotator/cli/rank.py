"""`annotator rank`: order the pairs by how likely their current label is wrong (issue 13)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from annotator.cli.common import print_json, progress_bar, state, stderr, stdout

if TYPE_CHECKING:
    from annotator.rank import RankReport


def rank_command(
    ctx: typer.Context,
    folds: int = typer.Option(5, "--folds", min=2, help="k of the cross-validation (grouped by recording)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs per fold [small: 6, paper: the preset's]."),
    preset: str = typer.Option("small", "--preset", help="small (CPU-sized) or paper (the authors' networks)."),
    modality: str = typer.Option("both", "--modality", help="both (fusion), image or audio."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cuda or cpu."),
    seed: int = typer.Option(0, "--seed", help="Seeds the folds and the training: same store + seed, same ranking."),
    image_size: int | None = typer.Option(
        None, "--image-size", min=32, help="Side of the image input [small on CPU: 64; else the preset's]."
    ),
    audio_width: int | None = typer.Option(
        None, "--audio-width", min=1, help="Channels of the small audio CNN's first stage [small on CPU: 8]."
    ),
    osm_weight: float = typer.Option(
        0.0,
        "--osm-weight",
        min=0.0,
        max=1.0,
        help="Weight of OSM's own evidence (edit age, coverage, confidence) in the suspicion of an OSM label.",
    ),
    csv_path: Path | None = typer.Option(
        None, "--csv", metavar="FILE", help="Write every scored pair, most suspicious first, to FILE."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="ANNOTATOR_CACHE", help="Feature cache [default: ~/.cache/annotator/features]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run's summary as one JSON object."),
) -> None:
    """Rank the pairs by how likely their label is wrong: out-of-fold predictions of the classifier + cleanlab.

    Every pair's current label is its human final label where there is one, else its OSM label. The classifier
    is trained k times, each time on the other folds' labelled pairs (folds grouped by recording, stratified by
    class), so every pair is scored by a model that never saw it; suspicion = 1 − p(current label). The run is
    stored (the latest one orders `ls push` and is measured by `status`); progress goes to stderr.

    Example: annotator rank --folds 5 --seed 0 --csv ranking.csv
    """
    from annotator.rank import RankOptions, rank_pairs, write_rank_csv
    from annotator.store import unit_of_work

    app_state = state(ctx)
    options = RankOptions(
        folds=folds,
        epochs=epochs,
        preset=preset,
        modality=modality,
        device=device,
        seed=seed,
        image_size=image_size,
        audio_width=audio_width,
        osm_weight=osm_weight,
        cache_dir=cache_dir,
    )
    log = None if app_state.quiet else lambda message: stderr.print(message, markup=False, highlight=False)
    with (
        app_state.store() as engine,
        unit_of_work(engine) as work,
        progress_bar(app_state, "Training the folds", None) as bar,
    ):

        def progress(done: int, total: int) -> None:
            bar.update(bar.task_ids[0], description="Training the folds", completed=done, total=total)

        def on_cache_progress(done: int, total: int) -> None:
            bar.update(bar.task_ids[0], description="Decoding features", completed=done, total=total)

        report = rank_pairs(
            work, app_state.location.media_dir, options, log=log, progress=progress, on_cache_progress=on_cache_progress
        )
    if csv_path is not None:
        write_rank_csv(report.pairs, csv_path)
    if as_json:
        print_json(report.to_json())
        return
    _print_summary(report, csv_path)


def _top_table(report: RankReport) -> Table:
    table = Table(title=f"Rank run #{report.run_id}: the {min(10, len(report.pairs))} most suspicious pairs")
    for name in ("rank", "pair", "recording", "current label", "from", "model suggests", "p", "suspicion"):
        table.add_column(name, justify="right" if name in ("rank", "pair", "p", "suspicion") else "left")
    for p in report.pairs[:10]:
        table.add_row(
            str(p.rank),
            str(p.pair_id),
            p.recording_source_id,
            p.current_label or "—",
            p.label_origin or "",
            p.suggested_label,
            f"{p.suggested_p:.2f}",
            f"{p.suspicion:.3f}",
        )
    return table


def _print_summary(report: RankReport, csv_path: Path | None) -> None:
    from annotator.rank import FLAG_THRESHOLD, RANK_SKIP_REASONS

    counts = report.counts
    stdout.print(_top_table(report))
    origins = counts["label_origin"]
    stdout.print(
        f"Scored {counts['scored']} pairs of {counts['recordings']} recordings; trained on {counts['trained_on']} "
        f"labels ({origins['human']} human, {origins['osm']} OSM); {origins['none']} scored without any label.",
        markup=False,
    )
    stdout.print(
        f"Flagged {counts['flagged']} pairs (suspicion ≥ {FLAG_THRESHOLD}); the model disagrees with "
        f"{counts['disagree']} current labels.",
        markup=False,
    )
    for reason, n in counts["skipped"].items():
        stdout.print(f"Left out {n} pairs: {RANK_SKIP_REASONS.get(reason, reason)}.", markup=False)
    per_fold = ", ".join(f"{s:.0f}" for s in report.model.get("seconds_per_fold", []))
    stdout.print(f"Rank run #{report.run_id} stored ({report.seconds:.0f} s; per fold: {per_fold} s).", markup=False)
    if csv_path is not None:
        stdout.print(f"Wrote {len(report.pairs)} rows to {csv_path}.", markup=False)
