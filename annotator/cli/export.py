"""`annotator export OUT`: the balanced dataset in the ADVANCE layout (SPEC §8)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from annotator.cli.common import print_json, progress_bar, state, stderr, stdout
from annotator.vocabulary import PairOrigin
from dataset.split import Split, SplitBy

if TYPE_CHECKING:
    from rich.progress import Progress

    from annotator.export import ExportReport
    from annotator.export import Progress as ExportProgress

SPLITS = tuple(s.value for s in Split)
FORMATS = ("folder", "webdataset")  # annotator.export.ExportFormat, spelled here so --help imports no library


def export_command(
    ctx: typer.Context,
    out: Path = typer.Argument(
        ..., metavar="OUT", help="The dataset folder to create (must not exist unless --force)."
    ),
    min_per_class: int = typer.Option(10, "--min-per-class", min=0, help="Drop classes with fewer pairs."),
    augment_below: int = typer.Option(
        100, "--augment-below", min=0, help="Add 4 offset pairs per original to classes with fewer pairs."
    ),
    offset_m: float = typer.Option(
        64.0, "--offset-m", metavar="M", help="Offset distance in metres (a quarter of a 256 m footprint)."
    ),
    sample_rate: int = typer.Option(22050, "--sample-rate", help="Sample rate of the exported WAVs (soxr)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the split and the offset clips' windows."),
    include_unreviewed: bool = typer.Option(
        False,
        "--include-unreviewed",
        help="Also export unreviewed pairs under their OSM label (label_source=osm in metadata.csv).",
    ),
    imagery: str | None = typer.Option(
        None, "--imagery", metavar="SOURCE", help="Imagery for offset images [default: each pair's import source]."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace an earlier export at OUT (only once the new one is complete); a folder holding anything its "
        "manifest.json does not list, the store or the media is never replaced.",
    ),
    audio_root: Path | None = typer.Option(
        None,
        "--audio-root",
        help="Folder the import manifest's audio paths are relative to, to cut offset clips "
        "from the whole recordings [default: looked for beside the store and media].",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Processes that resample and write clips [default: min(2, CPUs)]."
    ),
    split_by: SplitBy = typer.Option(
        SplitBy.RECORDING,
        "--split-by",
        case_sensitive=False,
        help="Keep together in one split: each recording with its offsets (the paper's), or every spatial block of "
        "recordings whose image footprints overlap or whose places lie within --block-m.",
    ),
    block_m: float | None = typer.Option(
        None,
        "--block-m",
        metavar="M",
        min=0,
        help="With --split-by block: also join recordings whose places lie closer than this (overlapping footprints "
        "are always joined) [default: the image footprint side, 256 m at 512 px × 0.5 m/px].",
    ),
    output_format: str = typer.Option(
        "folder",
        "--format",
        metavar="|".join(FORMATS),
        help="folder: the ADVANCE layout; webdataset: tar shards of the same samples for scale-out training.",
    ),
    shard_size: int = typer.Option(1000, "--shard-size", min=1, help="Samples per shard with --format webdataset."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash the written dataset against its manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object instead of tables."),
) -> None:
    """Export the reviewed pairs as a balanced ADVANCE-layout dataset (vision/, sound/, metadata.csv, manifest).

    Classes under --min-per-class are dropped; classes under --augment-below get four offset pairs (N, E, S, W)
    per original, recorded in the store and reused by later exports. Every export carries a data card
    (README.md), ATTRIBUTION.csv and splits/*.txt, and reports its leakage: pairs of samples in different splits
    whose images overlap (0 with --split-by block). Written to a temporary folder beside OUT and renamed when
    complete; the same store and parameters give a byte-identical dataset.

    Example: annotator export dataset/ --min-per-class 10 --augment-below 100 --seed 7 --split-by block
    """
    from annotator.errors import ExportError
    from annotator.export import ExportFormat, ExportOptions, default_workers, export_dataset
    from annotator.store import unit_of_work

    app_state = state(ctx)
    if output_format.lower() not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    options = ExportOptions(
        min_per_class=min_per_class,
        augment_below=augment_below,
        offset_m=offset_m,
        sample_rate=sample_rate,
        seed=seed,
        include_unreviewed=include_unreviewed,
        imagery=imagery,
        force=force,
        workers=workers or default_workers(),
        audio_root=audio_root,
        split_by=split_by,
        block_m=block_m,
        format=ExportFormat(output_format.lower()),
        shard_size=shard_size,
    )
    with app_state.store() as engine, unit_of_work(engine) as work:
        if include_unreviewed:
            stderr.print(
                "Note: --include-unreviewed: pairs nobody reviewed are exported under their OSM label, standing in "
                "for a human review (label_source=osm in metadata.csv).",
                markup=False,
            )
        with progress_bar(app_state, "Selecting pairs", None) as bar:
            report = export_dataset(work, app_state.location, out, options, progress=_stage_progress(bar))
    if as_json:
        document = report.to_json()
        if verify:
            document["verify"] = _verify_json(report.out)
        print_json(document)
        if verify and not document["verify"]["ok"]:
            raise typer.Exit(1)
        return
    _print_summary(report)
    if verify:
        _verify(report.out)


def _stage_progress(bar: Progress) -> ExportProgress:
    """An export progress callback driving the single task of `bar` through the export's stages."""
    task = bar.task_ids[0]

    def progress(stage: str, n: int, total: int | None) -> None:
        if total is not None:
            bar.update(task, description=stage, total=total, completed=0)
        bar.advance(task, n)

    return progress


def _verify(out: Path) -> None:
    """Re-hash the written dataset; print each problem and exit 1 when it does not match its manifest."""
    from dataset.layout import verify_dataset

    result = verify_dataset(out)
    if not result.ok:
        for kind, relpath in result.problems():
            stdout.print(f"{kind}: {relpath}", markup=False)
        stderr.print(f"Error: verification of {out} failed.", markup=False)
        raise typer.Exit(1)
    stdout.print(f"Verified: {result.checked} files match the manifest.", markup=False)


def _verify_json(out: Path) -> dict[str, object]:
    from annotator.cli.verify import verify_json
    from dataset.layout import verify_dataset

    return verify_json(out, verify_dataset(out))


def _leakage_caption(report: ExportReport) -> str | None:
    plan = report.split
    if plan is None:
        return None
    how = f"block, {plan.block_m:g} m, {plan.groups} blocks" if plan.by is SplitBy.BLOCK else "recording"
    other = ", ".join(f"by {mode}: {n}" for mode, n in plan.leakage_by_mode.items())
    caption = (
        f"Split by {how}. Leakage: {plan.leakage.pairs} pairs of samples in different splits have overlapping "
        f"footprints ({other})."
    )
    if plan.shares:
        target = {"train": 0.7, "val": 0.1, "test": 0.2}
        worst = max(plan.shares, key=lambda c: sum(abs(plan.shares[c][s] - t) for s, t in target.items()))
        shares = "/".join(f"{100 * plan.shares[worst][s]:.0f}" for s in SPLITS)
        caption += f" Realised shares per class in --json; furthest from 70/10/20: {worst} {shares} %."
    return caption


def _summary_table(report: ExportReport) -> Table:
    """Per class: originals, offsets, total and the split counts; then a row for all classes; the leakage below."""
    table = Table(title=f"Export to {report.out}", caption=_leakage_caption(report), caption_justify="left")
    for name in ("class", PairOrigin.ORIGINAL.value, PairOrigin.OFFSET.value, "total", *SPLITS):
        table.add_column(name, justify="left" if name == "class" else "right")
    for cls, total in report.per_class.items():
        splits = report.per_class_split.get(cls, {})
        table.add_row(
            cls,
            str(report.originals.get(cls, 0)),
            str(report.offsets.get(cls, 0)),
            str(total),
            *(str(splits.get(s, 0)) for s in SPLITS),
        )
    table.add_row(
        "all",
        str(sum(report.originals.values())),
        str(sum(report.offsets.values())),
        str(report.total),
        *(str(report.per_split.get(s, 0)) for s in SPLITS),
    )
    return table


def _print_offset_warnings(report: ExportReport) -> None:
    from annotator.export import OFFSET_NOTES, OFFSET_PROBLEMS

    offsets = report.offset_report
    if offsets.created or offsets.reused:
        stdout.print(f"Offset pairs: {offsets.created} made now, {offsets.reused} reused from the store.", markup=False)
    for problem, n in sorted(offsets.problems.items()):
        example = offsets.examples.get(problem)
        stderr.print(
            f"Warning: {n} offset pairs not made: {OFFSET_PROBLEMS.get(problem, problem)}"
            + (f" (e.g. {example})." if example else "."),
            markup=False,
        )
    for note, n in sorted(offsets.notes.items()):
        stderr.print(
            f"Warning: {n} offset pairs: {OFFSET_NOTES.get(note, note)} (e.g. {offsets.examples.get(note)}).",
            markup=False,
        )


def _print_summary(report: ExportReport) -> None:
    from annotator.export import SKIP_REASONS
    from annotator.vocabulary import LabelSource

    stdout.print(_summary_table(report))
    for cls, n in report.dropped.items():
        stdout.print(f"Dropped {cls}: {n} pairs (fewer than --min-per-class).", markup=False)
    for reason, n in sorted(report.skipped.items()):
        stdout.print(f"Left out {n} pairs: {SKIP_REASONS.get(reason, reason)}.", markup=False)
    _print_offset_warnings(report)
    for sample_id, why in report.failed[:10]:
        stderr.print(f"Warning: sample {sample_id} left out, its media would not load: {why}", markup=False)
    osm = report.label_sources.get(LabelSource.OSM, 0)
    if osm:
        stdout.print(
            f"{osm} original pairs carry an OSM label instead of a human review (label_source=osm).", markup=False
        )
    shards = report.to_json()["shards"]
    if shards:
        counts = ", ".join(f"{split} {n}" for split, n in shards.get("shards_per_split", {}).items())
        stdout.print(f"Packed into webdataset shards of {shards.get('shard_size')} samples: {counts}.", markup=False)
    stdout.print(
        f"Wrote {report.total} pairs to {report.out} (export #{report.export_id}, manifest sha256 "
        f"{report.manifest_sha256[:12]}…).",
        markup=False,
    )
