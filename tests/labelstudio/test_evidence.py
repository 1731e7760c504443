"""The evidence a task shows: the recording and its page, each OSM element's page with its edit date and age, the
imagery date, the overlay image; no markup from OSM tags or author names reaches the page; blind tasks keep the
evidence and pre-select nothing — built offline, then pushed to the real Label Studio server and fetched back."""

from __future__ import annotations

import io
import urllib.request
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.overlays import ensure_overlays, overlay_relpath
from annotator.labelstudio.push import ensure_local_storage
from annotator.labelstudio.tasks import NO_OVERLAY, OSM_LABEL_KEY, MediaRoute, build_task
from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence, Pair, Recording
from annotator.vocabulary import ImageStatus, PairOrigin, RecordingSource, RecordingStatus, SceneClass
from dataset.imagery.geo import footprint_bbox
from tests.labelstudio.helpers import ls_project_id, remote_tasks, task_ids_by_pair
from tests.labelstudio.pairs import make_pairs

NOW = datetime(2026, 6, 1, tzinfo=UTC)
EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


class _Tags(HTMLParser):
    """Every start tag and its attributes in an HTML fragment."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def links(self) -> list[str]:
        return [str(a.get("href")) for t, a in self.tags if t == "a"]


def _pair(tmp_path: Path, *, source: RecordingSource = RecordingSource.FREESOUND, **recording: object) -> Pair:
    """A transient pair (no store needed) with a recording, evidence of two elements and an image on disk."""
    rec = Recording(
        id=3,
        source=source,
        source_id=str(recording.pop("source_id", "123456")),
        lat=60.4,
        lon=26.8,
        status=RecordingStatus.ACCEPTED,
        **recording,
    )
    pair = Pair(id=17, recording=rec, lat=60.4, lon=26.8, image_path="images/17.jpg", clip_path="clips/17.wav")
    pair.image_status, pair.origin = ImageStatus.PRESENT, PairOrigin.ORIGINAL
    west, south, east, north = footprint_bbox(60.4, 26.8)
    pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = west, south, east, north
    ring = [[west, south], [26.8, south], [26.8, 60.4005], [west, 60.4005], [west, south]]
    pair.osm_evidence = OsmEvidence(
        id=9,
        label="forest",
        confidence=0.8,
        source="kotka.osm.pbf",
        source_date="2024-05-01T00:00:00Z",
        queried_at=NOW,
        last_edit_at=datetime(2016, 4, 2, tzinfo=UTC),
        elements=[
            {
                "type": "way",
                "id": 1000,
                "version": 3,
                "timestamp": "2016-04-02T10:00:00Z",
                "tags": {"landuse": "forest"},
                "class": "forest",
                "decided": True,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            },
            {
                "type": "node",
                "id": 77,
                "version": 1,
                "timestamp": "2024-01-10T00:00:00Z",
                "tags": {"railway": "station"},
                "class": "train station",
                "decided": False,
                "geometry": {"type": "Point", "coordinates": [26.8001, 60.4001]},
            },
        ],
    )
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (512, 512), (90, 110, 80)).save(tmp_path / "images" / "17.jpg", format="JPEG")
    return pair


def test_task_names_the_recording_and_links_each_osm_element_with_its_age(tmp_path: Path) -> None:
    pair = _pair(tmp_path, author="Jane Field", license="CC BY 4.0")
    pair.image_acquired = "2021-06-15"
    data = build_task(pair, media=MediaRoute.checked(tmp_path, None, None), now=NOW)["data"]
    assert 'href="https://freesound.org/s/123456/"' in data["pair"]
    assert "Freesound 123456" in data["pair"] and "Jane Field" in data["pair"] and "CC BY 4.0" in data["pair"]
    assert "imagery acquired 2021-06-15" in data["pair"]
    elements = data["osm_tags"]
    assert _Tags(elements).links() == [
        "https://www.openstreetmap.org/way/1000",
        "https://www.openstreetmap.org/node/77",
    ]
    assert "edited 2016-04-02, 10.2 years ago" in elements and "landuse=forest" in elements
    assert "edited 2024-01-10, 2.4 years ago" in elements
    assert elements.count("old: the ground may have changed") == 1  # only the 10-year-old edit
    assert "forest (confidence 0.80; last edit 2016-04-02" in data["osm"] and "10.2 years ago" in data["osm"]


def test_stored_source_url_wins_and_unknown_pages_are_not_linked(tmp_path: Path) -> None:
    with_url = _pair(tmp_path, source_url="https://example.org/rec/1")
    data = build_task(with_url, media=MediaRoute.checked(tmp_path, None, None), now=NOW)["data"]
    assert _Tags(data["pair"]).links() == ["https://example.org/rec/1"]
    manifest = _pair(tmp_path, source=RecordingSource.MANIFEST, source_id="rec-a")
    data = build_task(manifest, media=MediaRoute.checked(tmp_path, None, None), now=NOW)["data"]
    assert _Tags(data["pair"]).links() == [] and "recording rec-a" in data["pair"]
    assert "author unknown" in data["pair"] and "licence unknown" in data["pair"]
    assert "imagery acquisition date unknown" in data["pair"] and "offset" not in data["pair"]


def test_no_markup_from_authors_tags_or_urls_reaches_the_task(tmp_path: Path) -> None:
    pair = _pair(tmp_path, author=EVIL, license=EVIL, source_url="javascript:alert(3)", source_id=EVIL)
    assert pair.osm_evidence is not None
    pair.osm_evidence.elements[0]["tags"] = {"name": EVIL, EVIL: "x"}
    pair.osm_evidence.elements[0]["class"] = EVIL
    pair.osm_evidence.elements[1]["type"] = "javascript:alert(4)//"
    pair.osm_evidence.elements[1]["timestamp"] = EVIL
    pair.image_acquired = EVIL
    data = build_task(pair, media=MediaRoute.checked(tmp_path, None, None), now=NOW)["data"]
    for key in ("pair", "osm", "osm_tags"):
        tags = _Tags(data[key]).tags
        assert {t for t, _ in tags} <= {"a", "b", "br", "ul", "li"}, (key, tags)
        for tag, attrs in tags:
            assert set(attrs) <= {"href", "target", "rel", "style"}, (key, tag, attrs)
        assert all(link.startswith("https://") for link in _Tags(data[key]).links())
        assert "<script" not in data[key] and "<img" not in data[key]
    assert "&lt;script&gt;" in data["pair"] and "&lt;script&gt;" in data["osm_tags"]  # shown as text, escaped
    assert "no edit date" in data["osm_tags"]  # the unparsable timestamp


def test_blind_task_keeps_the_evidence_and_osm_label_but_preselects_nothing(tmp_path: Path) -> None:
    pair = _pair(tmp_path)
    media = MediaRoute.checked(tmp_path, None, None)
    shown = build_task(pair, media=media, now=NOW)
    blind = build_task(pair, media=media, now=NOW, preselect=False)
    assert blind["data"] == shown["data"] and blind["data"][OSM_LABEL_KEY] == "forest"
    assert lsconfig.read_verdict(shown["predictions"][0]["result"]) == "forest"
    assert [(p["model_version"], p["score"], p["result"]) for p in blind["predictions"]] == [
        (shown["predictions"][0]["model_version"], 0.8, [])
    ]


def test_overlay_key_points_at_the_rendered_file_or_a_placeholder(tmp_path: Path) -> None:
    pair = _pair(tmp_path)
    media = MediaRoute.checked(tmp_path, None, None)
    assert build_task(pair, media=media, now=NOW)["data"]["overlay"] == NO_OVERLAY
    report = ensure_overlays(tmp_path, [pair])
    assert report.rendered == 1 and overlay_relpath(pair) == "overlays/17-9.jpg"
    assert build_task(pair, media=media, now=NOW)["data"]["overlay"] == "/data/local-files/?d=overlays/17-9.jpg"


# ------------------------------------------------------------------------------------------ the real server


@pytest.fixture
def location(ls_location):
    return ls_location


@pytest.mark.labelstudio
def test_pushed_task_carries_links_dates_and_a_served_overlay(engine, location, cli, conn, ls, ls_env, project_title):
    fresh, old = make_pairs(engine, location.media_dir, [SceneClass.FOREST, SceneClass.LAKE])
    with session_scope(engine) as session:
        for pair in session.scalars(select(Pair).options(selectinload(Pair.recording))):
            pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = footprint_bbox(
                pair.lat, pair.lon
            )
            pair.image_acquired = "2021-06-15"
        recording = session.get(Pair, fresh).recording  # type: ignore[union-attr]
        recording.source, recording.source_id = RecordingSource.FREESOUND, "654321"
        recording.author, recording.license = "Jane <b>Field</b>", "CC BY 4.0"
        evidence = session.scalar(select(OsmEvidence).where(OsmEvidence.pair_id == fresh))
        assert evidence is not None
        west, south, east, north = footprint_bbox(60.4, 26.8)
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        evidence.elements = [
            {**evidence.elements[0], "decided": True, "geometry": {"type": "Polygon", "coordinates": [ring]}}
        ]
    with session_scope(engine) as session:
        pairs = session.scalars(select(Pair).options(selectinload(Pair.osm_evidence))).all()
        report = ensure_overlays(location.media_dir, pairs)
        assert report.rendered == 2 and report.failed == 0
    cli("ls", "push", "--project", project_title, env=ls_env)
    project = ls_project_id(engine)
    ensure_local_storage(conn, project, location.media_dir, {"overlays"})  # as push does, once wired to overlays

    tasks = {t["data"]["pair_id"]: t for t in remote_tasks(conn, project)}
    assert sorted(tasks) == sorted(task_ids_by_pair(engine))
    data = tasks[fresh]["data"]
    assert 'href="https://freesound.org/s/654321/"' in data["pair"] and "Jane &lt;b&gt;Field&lt;/b&gt;" in data["pair"]
    assert "imagery acquired 2021-06-15" in data["pair"]
    for pair_id, way in ((fresh, 1000), (old, 1001)):  # make_pairs: way 1000 + its index
        elements = tasks[pair_id]["data"]["osm_tags"]
        assert f'href="https://www.openstreetmap.org/way/{way}"' in elements
        assert "edited 2016-04-02" in elements and "years ago" in elements and "old:" in elements
        url = tasks[pair_id]["data"]["overlay"]
        assert url.startswith("/data/local-files/?d=") and url.endswith(".jpg")
        request = urllib.request.Request(ls.url + url, headers={"Authorization": f"Token {ls.api_key}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            image = Image.open(io.BytesIO(response.read()))
            assert image.format == "JPEG" and image.size == (512, 512)

    remote = conn.client.projects.get(id=project)
    assert remote.label_config == lsconfig.labelling_config()
    conn.client.projects.validate_label_config(id=project, label_config=lsconfig.labelling_config())  # 200, or raises


@pytest.mark.labelstudio
def test_blind_predictions_are_accepted_and_served_in_score_order(conn, ls, project_title):
    """Label Studio keeps an empty-result prediction with its score, and its uncertainty sampling serves those
    tasks among the others by score — so blind tasks keep their place in the queue."""
    import httpx

    created = conn.client.projects.create(
        title=project_title, label_config=lsconfig.labelling_config(), sampling="Uncertainty sampling"
    )
    version = "osm:probe@2024-05-01"
    scores = [0.9, 0.2, 0.5, 0.05, 0.7]
    fields = {"image": "x", "overlay": NO_OVERLAY, "audio": "y", "pair": "p", "osm": "o", "model": "m", "osm_tags": "t"}
    tasks = []
    for n, score in enumerate(scores):
        blind = n in (1, 3)
        pred = (
            lsconfig.blind_prediction(model_version=version, score=score)
            if blind
            else lsconfig.prediction("forest", model_version=version, score=score)
        )
        tasks.append({"data": {"pair_id": n, **fields, "note": "—"}, "predictions": [pred]})
    conn.client.projects.import_tasks(id=created.id, request=tasks, return_task_ids=True)  # type: ignore[arg-type]
    conn.client.projects.update(id=created.id, model_version=version)
    listed = {t["data"]["pair_id"]: t for t in remote_tasks(conn, int(created.id))}
    assert listed[1]["predictions"][0]["result"] == [] and listed[1]["predictions"][0]["score"] == 0.2
    served = []
    for _ in scores:
        answer = httpx.get(
            f"{ls.url}/api/projects/{created.id}/next", headers={"Authorization": f"Token {ls.api_key}"}, timeout=60
        )
        answer.raise_for_status()
        task = answer.json()
        served.append(task["data"]["pair_id"])
        conn.client.annotations.create(id=task["id"], result=lsconfig.annotation_result("lake"))
    assert served == sorted(range(len(scores)), key=lambda n: scores[n])
