"""`--json`: every command that prints a summary table has a JSON twin — one object on stdout and nothing else
there (progress and messages go to stderr) — and a failing command still says one sentence, exits non-zero and
prints no JSON and no traceback.

The commands are run in-process (stderr is not a terminal, so the plain progress lines are on, as in CI) over a
small generated corpus in the demo world (seeded recordings, a zoom-18 tile folder, the demo OSM extract), and each
JSON summary is checked against the store it describes. `rank --json` and
`evaluate --json` are parsed by tests/rank/test_rank_cli.py and tests/model/test_model_train.py, `status --json` by
tests/store/test_status.py; here they are only in the list every command must satisfy.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.cli import app
from annotator.config import StoreLocation, resolve_store
from annotator.demo import world
from annotator.demo.osm import write_demo_osm
from annotator.store import open_store
from annotator.store.models import ImportReject, OsmEvidence, Pair
from dataset.imagery.geo import global_pixel
from tests.conftest import Cli, CliResult
from tests.data.generate import make_audio, write_csv_manifest
from tests.imagery.tilegen import marker_tiles, tiles_around, write_folder
from tests.osm.conftest import add_pairs
from tests.osm.overpass_server import FakeOverpass, OverpassData

GOOD = 8  # good recordings in the generated corpus

#: Every command that prints a summary table (SPEC §5, issue 15): each must take --json.
COMMANDS_WITH_SUMMARY = [
    "import",
    "prelabel",
    "imagery fill",
    "ls push",
    "ls pull",
    "export",
    "verify",
    "train",
    "rank",
    "status",
    "evaluate",
    "init",
    "demo",
    "imagery crop",
]


def payload(result: CliResult) -> dict[str, Any]:
    """The one JSON object a `--json` command printed: the whole of stdout parses, and it is an object."""
    parsed = json.loads(result.stdout)
    assert isinstance(parsed, dict), result.stdout
    return parsed


def one_sentence(result: CliResult) -> str:
    """A failure under --json: nothing on stdout, one `Error:` line on stderr, no traceback."""
    assert result.exit_code != 0
    assert result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@dataclass
class Run:
    """A generated corpus, a store filled from it by the commands under test, and what each printed."""

    root: Path
    location: StoreLocation
    results: dict[str, CliResult]

    @property
    def tiles(self) -> str:
        return str(self.root / "tiles")

    def stored(self) -> tuple[int, Counter[str], Counter[str | None], int]:
        """Pairs, import rejects by reason, OSM evidence labels, pairs with an image — as the store has them."""
        engine = open_store(self.location)
        try:
            with Session(engine) as session:
                pairs = session.scalars(select(Pair)).all()
                rejects = Counter(str(r) for r in session.scalars(select(ImportReject.reason)))
                labels = Counter(e.label for e in session.scalars(select(OsmEvidence)))
                with_image = sum(p.image_path is not None for p in pairs)
                return len(pairs), rejects, labels, with_image
        finally:
            engine.dispose()


def write_corpus(root: Path) -> tuple[Path, Path]:
    """Recordings at the centres of demo-world cells OSM labels (two bad rows among them), the demo OSM extract,
    and a zoom-18 tile folder around every point; returns (manifest, OSM extract)."""
    points = [cell.centre for cell in world.cells() if cell.osm is not None][::4][:GOOD]
    rows: list[dict[str, object]] = []
    tiles = {}
    for i, (lat, lon) in enumerate(points):
        make_audio(root / f"r{i}.wav", 2.5, 8000, 1, seed=i)
        rows.append({"recording_id": f"r{i}", "lat": lat, "lon": lon, "audio": f"r{i}.wav", "license": "CC-BY-4.0"})
        tiles |= marker_tiles(tiles_around(lat, lon, 18, radius=2), global_pixel(lat, lon, 18))
    make_audio(root / "short.wav", 1.0, 8000, 1, seed=99)
    lat, lon = points[0]
    rows += [
        {"recording_id": "short", "lat": lat, "lon": lon, "audio": "short.wav"},
        {"recording_id": "gone", "lat": lat, "lon": lon, "audio": "gone.wav"},
    ]
    write_folder(root / "tiles", tiles)
    return write_csv_manifest(root / "manifest.csv", rows), write_demo_osm(root / "demo.osm")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("json")
    manifest, osm_file = write_corpus(root / "corpus")
    location = resolve_store(str(root / "annotator.db"), root / "media")
    cli = Cli(location=location, db_path=location.sqlite_path)
    tiles = str(root / "corpus" / "tiles")
    results: dict[str, CliResult] = {}
    results["init"] = cli("init", "--json")
    results["init again"] = cli("init", "--json")
    results["import"] = cli("import", str(manifest), "--json")
    results["imagery fill"] = cli("imagery", "fill", "--imagery", tiles, "--json")
    results["import again"] = cli("import", str(manifest), "--imagery", tiles, "--json")
    results["prelabel"] = cli("prelabel", "--osm-file", str(osm_file), "--json")
    lat, lon = (str(x) for x in world.cells()[0].centre)
    crop = ("imagery", "crop", lat, lon, "--imagery", tiles, "--out", str(root / "crop.jpg"), "--json")
    results["imagery crop"] = cli(*crop)
    return Run(root / "corpus", location, results)


@pytest.mark.slow  # the demo corpus takes ~20 s to generate
def test_demo_json_names_the_parts_it_wrote(tmp_path: Path) -> None:
    cli = Cli(location=resolve_store(str(tmp_path / "a.db"), tmp_path / "media"), db_path=tmp_path / "a.db")
    corpus = payload(cli("demo", str(tmp_path / "corpus"), "--json"))
    assert set(corpus) == {"root", "manifest", "tiles", "osm_file"} and corpus["root"] == str(tmp_path / "corpus")
    assert all(Path(where).exists() for where in corpus.values())


def test_init_json_says_created_then_up_to_date(run: Run) -> None:
    first, again = payload(run.results["init"]), payload(run.results["init again"])
    assert first["action"] == "created" and first["revision_before"] is None
    assert again["action"] == "up_to_date" and again["revision_before"] == again["revision"] == first["revision"]
    assert first["store"] == str(run.location.sqlite_path) and first["media_dir"] == str(run.location.media_dir)


def test_import_json_counts_what_the_store_holds(run: Run) -> None:
    pairs, rejects, _, _ = run.stored()
    report = payload(run.results["import"])
    assert report["new"] == pairs > 0 and report["unchanged"] == 0
    assert report["rejected_by_reason"] == dict(rejects) and report["rejected"] == sum(rejects.values()) > 0
    assert report["rows"] == report["new"] + report["rejected"] + report["duplicates_skipped"]
    assert report["imagery"] is None and report["needs_imagery"] == report["new"]  # no --imagery: none cut yet
    assert Path(report["rejects_path"]).exists()
    again = payload(run.results["import again"])  # the same manifest: nothing new, and the fill finds nothing to do
    assert again["new"] == 0 and again["rows"] == report["rows"]
    assert again["unchanged"] + again["rejected"] + again["duplicates_skipped"] == again["rows"]
    assert again["imagery"]["filled"] == 0 and again["imagery"]["skipped"] == pairs and again["needs_imagery"] == 0


def test_imagery_fill_json_counts_the_images_cut(run: Run) -> None:
    pairs, _, _, with_image = run.stored()
    report = payload(run.results["imagery fill"])
    assert report["filled"] == with_image == pairs and report["failed"] == 0 and report["failed_by_reason"] == {}
    assert report["source"] == run.tiles


def test_prelabel_json_matches_the_stored_evidence(run: Run) -> None:
    pairs, _, labels, _ = run.stored()
    report = payload(run.results["prelabel"])
    assert report["pairs_todo"] == pairs and report["error"] is None
    assert report["per_class"] == dict(sorted((k, n) for k, n in labels.items() if k is not None))
    assert report["labelled"] == sum(report["per_class"].values()) and report["unmatched"] == labels[None]


def test_imagery_crop_json_describes_the_file(run: Run) -> None:
    crop = payload(run.results["imagery crop"])
    assert Path(crop["file"]).stat().st_size > 0
    footprint = crop["footprint"]
    assert footprint["west"] < crop["lon"] < footprint["east"] and footprint["south"] < crop["lat"] < footprint["north"]
    assert crop["resolution_m"] == 0.5 and crop["upsampled"] is (crop["native_resolution_m"] > 0.5)


def test_progress_goes_to_stderr_beside_the_json(run: Run) -> None:
    """Without a terminal the plain progress lines are on, and they land on stderr, never in the JSON."""
    result = run.results["import"]
    assert "Importing: done," in result.stderr and "Importing" not in result.stdout


# ---------------------------------------------------------------------------------------------- failures


def test_failures_under_json_are_one_sentence(cli, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "does not exist" in one_sentence(cli("import", str(tmp_path / "nope.csv"), "--json", expect=None))
    source = str(tmp_path / "no-tiles")
    assert "no-tiles" in one_sentence(cli("imagery", "fill", "--imagery", source, "--json", expect=None))
    out = str(tmp_path / "x.jpg")
    crop = cli("imagery", "crop", "60.4", "26.8", "--imagery", source, "--out", out, "--json", expect=None)
    assert "no-tiles" in one_sentence(crop)
    (tmp_path / "bad.osm.pbf").write_bytes(b"this is not a pbf file")
    add_pairs(engine, [(60.52645, 26.95121)])
    bad = cli("prelabel", "--osm-file", str(tmp_path / "bad.osm.pbf"), "--json", expect=None)
    assert "cannot read OSM extract" in one_sentence(bad)


def test_an_uninitialised_store_under_json_is_one_sentence(tmp_path: Path) -> None:
    cli = Cli(location=resolve_store(str(tmp_path / "none.db"), tmp_path / "media"), db_path=tmp_path / "none.db")
    assert "annotator init" in one_sentence(cli("import", str(tmp_path / "m.csv"), "--json", expect=None))
    assert not (tmp_path / "none.db").exists()


def test_prelabel_giving_up_still_prints_its_json_and_exits_1(cli, engine) -> None:  # type: ignore[no-untyped-def]
    """The pairs done so far are a result worth printing; the error is in it and said once on stderr."""
    add_pairs(engine, [(60.52645, 26.95121), (60.52235, 26.93506)])
    server = FakeOverpass(OverpassData([])).start()
    try:
        server.fail_next("504")
        result = cli("prelabel", "--overpass-url", server.url, "--retries", "0", "--json", expect=1)
    finally:
        server.stop()
    report = payload(result)
    assert report["left_unlabelled"] == 2 and report["labelled"] == 0 and "504" in report["error"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------------------- every command


def _command(path: str) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path.split():
        found = getattr(command, "commands", {}).get(name)
        assert found is not None, f"no command `annotator {path}`"
        command = found
    return command


@pytest.mark.parametrize("path", COMMANDS_WITH_SUMMARY)
def test_every_command_with_a_summary_takes_json(path: str) -> None:
    options = {opt for param in _command(path).params for opt in getattr(param, "opts", [])}
    assert "--json" in options, f"`annotator {path}` prints a summary table but has no --json"
