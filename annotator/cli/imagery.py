"""`annotator imagery ...` (issue 3): fill pairs' aerial images from a SOURCE, preview a crop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from annotator.cli.common import advance, plain_counts, print_json, progress_bar, state, stderr, stdout

if TYPE_CHECKING:
    from annotator.imagery import FillReport
    from dataset.imagery.crop import Crop

app = typer.Typer(help="Aerial imagery for pairs.", no_args_is_help=True)

SOURCE_HELP = (
    "Imagery SOURCE: a tile folder (DIR/{z}/{x}/{y}.png), a path template, an .mbtiles file, "
    "an http(s):// URL template with {z}/{x}/{y}, a GeoTIFF / Cloud-Optimised GeoTIFF (path or http(s):// URL, "
    "any CRS), or wms:<GetMap URL> with {bbox}, {width}, {height} in EPSG:3857."
)


@app.command("fill")
def fill_command(
    ctx: typer.Context,
    imagery: str = typer.Option(..., "--imagery", help=SOURCE_HELP, envvar="ANNOTATOR_IMAGERY", show_envvar=True),
    resolution_m: float = typer.Option(0.5, "--resolution-m", min=0.01, help="Ground resolution, metres/pixel."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Also retry pairs whose earlier fill failed."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Tile cache of a URL source [default: .tile-cache beside the media dir]."
    ),
    user_agent: str | None = typer.Option(
        None, "--user-agent", envvar="ANNOTATOR_USER_AGENT", help="User-Agent for a URL source (add your contact)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object instead of a table."),
) -> None:
    """Cut an aerial image for every pair stored without one (\"needs imagery\").

    Example: annotator imagery fill --imagery tiles/ --resolution-m 0.5

    Example: annotator imagery fill --imagery tiles/ --json > fill.json
    """
    from annotator.imagery import count_pairs_to_fill, fill_missing_images
    from annotator.store import unit_of_work

    app_state = state(ctx)
    with app_state.store() as engine, unit_of_work(engine) as work:
        total = count_pairs_to_fill(work.session, retry_failed=retry_failed)
        with progress_bar(app_state, "Cutting images", total) as bar:
            report = fill_missing_images(
                work,
                app_state.location,
                imagery,
                resolution_m=resolution_m,
                retry_failed=retry_failed,
                cache_dir=cache_dir,
                user_agent=user_agent,
                progress=lambda n: advance(bar, n),
            )
    if as_json:
        print_json(fill_json(report))
    else:
        stdout.print(_fill_table(report, retry_failed))
    if report.failed and not app_state.quiet:
        stderr.print(
            "Failed pairs keep their reason (pairs.image_error); fix the source and rerun with --retry-failed.",
            markup=False,
        )


@app.command("crop")
def crop_command(
    lat: float = typer.Argument(..., metavar="LAT", help="Latitude, degrees."),
    lon: float = typer.Argument(..., metavar="LON", help="Longitude, degrees."),
    imagery: str = typer.Option(..., "--imagery", help=SOURCE_HELP, envvar="ANNOTATOR_IMAGERY", show_envvar=True),
    out: Path = typer.Option(..., "--out", help="Where to write the JPEG."),
    resolution_m: float = typer.Option(0.5, "--resolution-m", min=0.01, help="Ground resolution, metres/pixel."),
    size_px: int = typer.Option(512, "--size", min=16, max=4096, help="Side of the square image, pixels."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Tile cache of a URL source."),
    user_agent: str | None = typer.Option(
        None, "--user-agent", envvar="ANNOTATOR_USER_AGENT", help="User-Agent for a URL source (add your contact)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was cut as one JSON object instead of a table."),
) -> None:
    """Cut one image at a coordinate, to preview what a SOURCE gives (touches no store).

    Example: annotator imagery crop 60.403 26.806 --imagery tiles/ --out preview.jpg
    """
    from annotator.imagery import preview_crop

    crop = preview_crop(
        imagery, lat, lon, out, size_px=size_px, resolution_m=resolution_m, cache_dir=cache_dir, user_agent=user_agent
    )
    if as_json:
        print_json(crop_json(crop, lat, lon, out))
    else:
        stdout.print(_crop_table(crop, lat, lon, out))


def fill_json(report: FillReport) -> dict[str, object]:
    """What an imagery fill did, as `--json` prints it (`import --imagery` and `imagery fill`)."""
    return {
        "source": report.source,
        "filled": report.filled,
        "failed": report.failed,
        "failed_by_reason": plain_counts(report.failed_by_reason),
        "skipped": report.skipped,
    }


def _fill_table(report: FillReport, retry_failed: bool) -> Table:
    table = Table(title=f"Imagery from {report.source}")
    table.add_column("Pairs")
    table.add_column("Count", justify="right")
    table.add_row("filled", str(report.filled))
    for reason, count in sorted(report.failed_by_reason.items()):
        table.add_row(f"failed: {reason}", str(count))
    table.add_row("already had an image" + ("" if retry_failed else " or failed before"), str(report.skipped))
    return table


def crop_json(crop: Crop, lat: float, lon: float, out: Path) -> dict[str, object]:
    """The `--json` twin of the crop table."""
    west, south, east, north = crop.footprint
    return {
        "file": str(out),
        "lat": lat,
        "lon": lon,
        "zoom": crop.zoom,
        "resolution_m": crop.resolution_m,
        "native_resolution_m": crop.native_resolution_m,
        "upsampled": crop.upsampled,
        "footprint": {"west": west, "south": south, "east": east, "north": north},
        "acquired": crop.acquired,
    }


def _crop_table(crop: Crop, lat: float, lon: float, out: Path) -> Table:
    west, south, east, north = crop.footprint
    table = Table(title=f"Crop at {lat:.6f}, {lon:.6f}")
    table.add_column("Field")
    table.add_column("Value")
    table.add_row("file", str(out))
    table.add_row("zoom", str(crop.zoom))
    table.add_row("resolution (m/px)", f"{crop.resolution_m:g}")
    table.add_row("source resolution (m/px)", f"{crop.native_resolution_m:.3f}" + (" (upsampled)" * crop.upsampled))
    table.add_row("footprint W,S,E,N", f"{west:.6f}, {south:.6f}, {east:.6f}, {north:.6f}")
    if crop.acquired:
        table.add_row("acquired", crop.acquired)
    return table
