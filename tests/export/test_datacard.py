"""The data card of an export: README.md and ATTRIBUTION.csv rendered from the store, covered by the manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import select

from annotator.export import ExportOptions
from annotator.store import session_scope
from annotator.store.models import OsmEvidence, Pair, Recording, Review
from annotator.vocabulary import FinalReason, ReviewOutcome, SceneClass
from dataset.datacard import public_source
from tests.export.world import PairSpec, plant_pairs, run_export

LICENCES = ("CC-BY 4.0", "CC0 1.0", "CC-BY-NC 4.0")
SECRET = "TOPSECRET42"
IMAGERY = f"https://ann:pw@tiles.example.org/{{z}}/{{x}}/{{y}}.png?api_key={SECRET}&style=sat"
OSM_DATE = "2024-01-02T00:00:00Z"
ACQUIRED = "2021-06-01"


def plant_varied(engine, location) -> dict[str, tuple[str, str, str]]:
    """Six reviewed pairs whose recordings differ in author, licence and source URL; two annotators reviewed every
    pair (agreeing on five); one pair's OSM class was corrected. Returns recording id → (author, licence, URL)."""
    specs = [
        PairSpec(f"lake{i}", final_label=SceneClass.LAKE.value, osm_label=SceneClass.LAKE) for i in range(1, 4)
    ] + [
        PairSpec("forest1", final_label=SceneClass.FOREST.value, osm_label=SceneClass.FARMLAND),
        PairSpec("forest2", final_label=SceneClass.FOREST.value, osm_label=SceneClass.FOREST),
        PairSpec("forest3", final_label=SceneClass.FOREST.value, final_reason=FinalReason.MAJORITY.value),
    ]
    ids = plant_pairs(engine, location, specs)
    expected = {}
    with session_scope(engine) as session:
        for n, pair_id in enumerate(ids):
            pair = session.get(Pair, pair_id)
            recording = session.get(Recording, pair.recording_id)
            recording.author = f'Ann "{n}" O\'Neil, | field recordist' if n == 0 else f"author {n}"
            recording.license = LICENCES[n % len(LICENCES)]
            recording.source_url = f"https://freesound.org/people/a{n}/sounds/{1000 + n}/"
            pair.image_source = IMAGERY
            pair.image_acquired = ACQUIRED
            expected[recording.source_id] = (recording.author, recording.license, recording.source_url)
            for k, annotator in enumerate(("ann@example.org", "bob@example.org")):
                verdict = SceneClass.LAKE.value if (n == 5 and k == 1) else (pair.final_label or "")
                session.add(
                    Review(
                        pair_id=pair_id,
                        ls_task_id=100 + n,
                        ls_annotation_id=1000 + 10 * n + k,
                        annotator=annotator,
                        verdict=verdict,
                        outcome=ReviewOutcome.LABELLED,
                    )
                )
        for evidence in session.scalars(select(OsmEvidence)):
            evidence.source, evidence.source_date = "/home/curator/osm/finland-latest.osm.pbf", OSM_DATE
    return expected


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_card_lists_every_author_licence_and_source_url_and_reexports_byte_identically(engine, location, tmp_path):
    expected = plant_varied(engine, location)
    options = ExportOptions(min_per_class=1, augment_below=0, seed=2, workers=1)
    report = run_export(engine, location, tmp_path / "one", options)
    out = report.out
    with (out / "ATTRIBUTION.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["recording"] for r in rows] == sorted(expected)
    assert {r["recording"]: (r["author"], r["license"], r["source_url"]) for r in rows} == expected
    assert all(r["samples"] == "1" for r in rows)
    with (out / "metadata.csv").open(newline="", encoding="utf-8") as handle:
        metadata = list(csv.DictReader(handle))
    assert {r["recording"]: r["source_url"] for r in metadata} == {k: v[2] for k, v in expected.items()}
    assert {r["image_source"] for r in metadata} == {"https://tiles.example.org/{z}/{x}/{y}.png?api_key=***&style=sat"}

    card = (out / "README.md").read_text(encoding="utf-8")
    for author, licence, _url in expected.values():
        assert author.replace("|", "\\|") in card
        assert licence in card
    assert "| CC-BY 4.0 | 2 | 2 |" in card  # licences with counts
    assert "finland-latest.osm.pbf" in card and OSM_DATE in card and "/home/curator" not in card
    assert "tiles.example.org" in card and ACQUIRED in card
    assert "**6 human-reviewed** (100.0 %)" in card
    assert "2 reviewers labelled the exported pairs" in card
    assert "Krippendorff's α = " in card and "over 6 pairs" in card
    # forest1: OSM farmland, human forest; forest3: OSM matched nothing
    assert "of the 5 pairs OSM suggested a class for, the reviewers kept it for 4 (80.0 %)" in card
    assert "| farmland | 1 | 0 |" in card and "| none | 1 | 0 |" in card  # columns: forest, lake
    assert "Split by recording" not in card and "Drawn by recording" in card
    for path in tmp_path.joinpath("one").rglob("*"):  # no credential of the imagery URL anywhere in the export
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes() and b"ann:pw" not in path.read_bytes()

    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("README.md", "ATTRIBUTION.csv", "splits/train.txt", "splits/val.txt", "splits/test.txt"):
        assert name in manifest["files"]
    again = run_export(engine, location, tmp_path / "two", options)
    assert tree_bytes(again.out) == tree_bytes(out)


def test_verify_catches_a_changed_data_card(engine, location, cli, tmp_path):
    plant_varied(engine, location)
    out = tmp_path / "ds"
    cli("export", str(out), "--min-per-class", "1", "--augment-below", "0", "--workers", "1")
    card = out / "README.md"
    card.write_text(card.read_text(encoding="utf-8").replace("CC0 1.0", "CC0 1.1"), encoding="utf-8")
    result = cli("verify", str(out), expect=1)
    assert "changed: README.md" in result.stdout
    (out / "ATTRIBUTION.csv").unlink()
    listed = json.loads(cli("verify", str(out), "--json", expect=1).stdout)
    assert listed["ok"] is False and listed["changed"] == ["README.md"] and listed["missing"] == ["ATTRIBUTION.csv"]


def test_public_source_hides_credentials_and_local_folders():
    assert public_source(IMAGERY) == "https://tiles.example.org/{z}/{x}/{y}.png?api_key=***&style=sat"
    assert public_source("wms:https://maps.example.org/wms?token=abc&bbox={bbox}") == (
        "wms:https://maps.example.org/wms?token=***&bbox={bbox}"
    )
    assert public_source("/srv/data/ortho/tiles/{z}/{x}/{y}.png") == "tiles/{z}/{x}/{y}.png"
    assert public_source("/srv/data/ortho/helsinki_2021.tif") == "helsinki_2021.tif"
    assert public_source("manifest") == "manifest" and public_source(None) == ""
