"""The annotator's view of a pushed task, in a real headless Chromium against the session's Label Studio (issue 14
item 7).

Pairs are pushed with the real `annotator ls push`; the browser logs in through Label Studio's form as the admin,
opens the project's labelling stream ("Label All Tasks") and is asked what a person would see: both images decoded
at 512 × 512 (tied to their files by the SHA-256 of the bytes shown), the 10 s clip loaded, the OSM class ticked,
the instructions before the first task, links to the OSM elements and the recording's page. Then a hotkey picks
another class, Ctrl+Enter submits, and the SDK and `annotator ls pull` find that annotation.

One browser session serves the module (the tests run in file order; the last one submits). Screenshots go to
$ANNOTATOR_TEST_ARTIFACTS or tests/artifacts/. Skipped, saying why, only where Chromium is not installed. The
store is SQLite only: what is tested is the browser's view, which the store backend does not change.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from annotator.config import resolve_store
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.client import Connection, connect
from annotator.labelstudio.server import RunningServer
from annotator.store import open_store, upgrade_to_head
from annotator.store.engine import session_scope
from annotator.store.models import Pair, Review
from annotator.vocabulary import RecordingSource, SceneClass
from dataset.imagery.geo import footprint_bbox
from tests.conftest import Cli
from tests.labelstudio import browser
from tests.labelstudio.conftest import ROOT_ENV
from tests.labelstudio.helpers import ls_project_id, task_ids_by_pair
from tests.labelstudio.pairs import make_pairs

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

S = SceneClass
LABELS = [S.FOREST, S.LAKE, S.FARMLAND]
IMAGE_PX = 512
CLIP_S = 10.0
#: Task data key of the overlay image (the aerial crop with the deciding OSM geometries drawn).
OVERLAY = "overlay"


@dataclass
class View:
    """What the browser met on opening the stream (the page stays open for the tests that act on it)."""

    page: Any
    conn: Connection
    engine: Engine
    cli: Cli
    env: dict[str, str]
    login_email: str
    files_root: Path
    project_id: int
    task: dict[str, Any]
    pair_id: int
    project: dict[str, Any]
    images: list[dict[str, Any]]
    audio: dict[str, Any]
    instructions: tuple[str, str] | None
    links: list[dict[str, str]]
    shots: list[Path] = field(default_factory=list)

    def __repr__(self) -> str:  # short in assertion messages
        return f"View(task={self.task.get('id')}, pair={self.pair_id}, project={self.project_id})"

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.task["data"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _enrich_pairs(engine: Engine) -> None:
    """Give each pair what a real one has and the task must show: a Freesound recording with author, licence and
    page, the image's footprint, and a deciding OSM polygon (drawn on the overlay) over part of the image."""
    with session_scope(engine) as session:
        for pair in session.scalars(select(Pair)):
            rec = pair.recording
            rec.source, rec.source_id = RecordingSource.FREESOUND, str(700000 + pair.id)
            rec.author, rec.license = f"recordist{pair.id}", "http://creativecommons.org/licenses/by/4.0/"
            rec.source_url = f"https://freesound.org/people/recordist{pair.id}/sounds/{rec.source_id}/"
            box = footprint_bbox(pair.lat, pair.lon)
            pair.footprint_west, pair.footprint_south, pair.footprint_east, pair.footprint_north = box
            west, south, east, north = box
            evidence = pair.osm_evidence
            assert evidence is not None
            w, e = west + (east - west) * 0.15, west + (east - west) * 0.7
            s, n = south + (north - south) * 0.2, south + (north - south) * 0.8
            ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
            polygon = {"type": "Polygon", "coordinates": [ring]}
            evidence.elements = [{**element, "decided": True, "geometry": polygon} for element in evidence.elements]


def _screenshot(view_page: Any, name: str, shots: list[Path]) -> None:
    path = browser.artifacts_dir() / name
    view_page.screenshot(path=str(path), full_page=True)
    shots.append(path)
    print(f"screenshot: {path}")


def _report_screenshots(request: pytest.FixtureRequest, shots: list[Path]) -> None:
    """Name the screenshots in the test run's output (not only in captured stdout)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not shots:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line(f"\nbrowser test screenshots: {', '.join(str(p) for p in shots)}")


@pytest.fixture(scope="module")
def chromium_executable() -> Path:
    """The Chromium to drive; skips (before any server starts) only where none is installed."""
    executable = browser.chromium_path()
    if executable is None:
        named = os.environ.get(browser.CHROMIUM_ENV)
        pytest.skip(
            f"Chromium is not installed: ${browser.CHROMIUM_ENV}={named!r} is not an executable"
            if named
            else "Chromium is not installed: scripts/setup.sh installs Debian's chromium package as root "
            f"(apt-get install chromium), or name an executable in ${browser.CHROMIUM_ENV}"
        )
    return executable


@pytest.fixture(scope="module")
def view(chromium_executable: Path, request: pytest.FixtureRequest) -> Iterator[View]:
    # The server is asked for here, not as a parameter: pytest sets session fixtures up first, and a run without
    # Chromium should skip before it starts one.
    ls: RunningServer = request.getfixturevalue("ls")
    ls_files_root: Path = request.getfixturevalue("ls_files_root")
    from playwright.sync_api import sync_playwright

    folder = ls_files_root / f"browser-{uuid.uuid4().hex[:8]}"
    location = resolve_store(str(folder / "annotator.db"), folder / "media")
    engine = open_store(location, create=True)
    shots: list[Path] = []
    try:
        upgrade_to_head(engine)
        location.media_dir.mkdir(parents=True, exist_ok=True)
        make_pairs(engine, location.media_dir, list(LABELS))
        _enrich_pairs(engine)
        env = {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key, ROOT_ENV: str(ls_files_root)}
        cli = Cli(location=location, db_path=location.sqlite_path)
        cli("ls", "push", "--project", f"browser {folder.name}", env=env)
        project_id = ls_project_id(engine)
        conn = connect(ls.url, ls.api_key)
        project = conn.client.projects.get(id=project_id).model_dump()
        with sync_playwright() as playwright:
            chromium = browser.launch(playwright, chromium_executable)
            try:
                page = chromium.new_context(viewport={"width": 1400, "height": 1500}).new_page()
                browser.log_in(page, ls.url, ls.email, ls.password)
                task = browser.open_stream(page, ls.url, project_id)
                image_keys = [key for key in (lsconfig.IMAGE, OVERLAY) if key in task["data"]]
                images = browser.wait_for_images(page, len(image_keys))
                audio = browser.wait_for_audio(page)
                instructions = browser.instructions_modal(page) if project.get("show_instruction") else None
                _screenshot(page, "ls-stream-first-view.png", shots)
                if instructions is not None:
                    browser.close_instructions(page)
                yield View(
                    page=page,
                    conn=conn,
                    engine=engine,
                    cli=cli,
                    env=env,
                    login_email=ls.email,
                    files_root=ls_files_root,
                    project_id=project_id,
                    task=task,
                    pair_id=int(task["data"]["pair_id"]),
                    project=project,
                    images=images,
                    audio=audio,
                    instructions=instructions,
                    links=browser.links(page),
                    shots=shots,
                )
            finally:
                chromium.close()
    finally:
        engine.dispose()
        _report_screenshots(request, shots)


def test_the_stream_serves_a_pushed_task(view: View) -> None:
    assert view.task["id"] == task_ids_by_pair(view.engine)[view.pair_id]


def test_the_aerial_image_is_decoded_at_512(view: View) -> None:
    image = browser.local_file(view.data[lsconfig.IMAGE], view.files_root)
    with session_scope(view.engine) as session:
        pair = session.get(Pair, view.pair_id)
        assert pair is not None and image.name == Path(pair.image_path or "").name
    shown = {img["sha256"]: (img["width"], img["height"]) for img in view.images}
    assert shown.get(_sha256(image)) == (IMAGE_PX, IMAGE_PX), f"aerial image not shown decoded: {view.images}"


def test_the_overlay_image_is_decoded_at_512(view: View) -> None:
    assert OVERLAY in view.data, f"the task carries no overlay image (data keys: {sorted(view.data)})"
    overlay = browser.local_file(view.data[OVERLAY], view.files_root)
    assert overlay.is_file(), f"the overlay's URL names no file under the files root: {overlay}"
    shown = {img["sha256"]: (img["width"], img["height"]) for img in view.images}
    assert shown.get(_sha256(overlay)) == (IMAGE_PX, IMAGE_PX), f"overlay not shown decoded: {view.images}"
    assert _sha256(overlay) != _sha256(browser.local_file(view.data[lsconfig.IMAGE], view.files_root))


def test_the_audio_loads_ten_seconds(view: View) -> None:
    assert view.audio["src"] == view.data[lsconfig.AUDIO]
    clip = browser.local_file(view.audio["src"], view.files_root)
    assert clip.name == f"{view.pair_id}.wav" and clip.is_file()
    assert view.audio["readyState"] >= 1
    assert view.audio["duration"] == pytest.approx(CLIP_S, abs=0.1)


def test_the_osm_class_is_preselected(view: View) -> None:
    osm_label = view.data["osm_label"]
    with session_scope(view.engine) as session:
        pair = session.get(Pair, view.pair_id)
        assert pair is not None and pair.osm_evidence is not None
        assert osm_label == pair.osm_evidence.label
    browser.wait_for_choice(view.page, osm_label)
    assert browser.checked_choices(view.page) == [osm_label]


def test_the_instructions_are_shown_before_the_first_task(view: View) -> None:
    instruction = view.project.get("expert_instruction") or ""
    assert view.project.get("show_instruction") is True, "the project does not show its instructions first"
    assert instruction.strip(), "the project has no labelling instructions (expert_instruction is empty)"
    from annotator.labelstudio.instructions import project_instructions

    assert instruction == project_instructions(), "the project's instructions are not the generated ones"
    assert view.instructions is not None
    title, text = view.instructions
    assert "Instructions" in title
    # The modal shows the instructions' own words: every word of their text (tags dropped) is on screen.
    words = re.findall(r"\w+", html.unescape(re.sub(r"<[^>]+>", " ", instruction)))
    on_screen = set(re.findall(r"\w+", text))
    missing = sorted({w for w in words if w not in on_screen})
    assert not missing, f"words of the instructions not shown: {missing[:20]}"
    lowered = text.lower()
    undefined = [value for value in lsconfig.VERDICT_CHOICES if value.lower() not in lowered]
    assert not undefined, f"the instructions never name: {undefined}"


def test_the_evidence_links_name_the_osm_elements_and_the_recording(view: View) -> None:
    with session_scope(view.engine) as session:
        pair = session.get(Pair, view.pair_id)
        assert pair is not None and pair.osm_evidence is not None
        elements = {(str(e["type"]), int(e["id"])) for e in pair.osm_evidence.elements or []}
        source_url = pair.recording.source_url
    linked = browser.osm_element_links(view.links)
    assert elements and elements <= linked, f"OSM elements {elements} not linked; links: {view.links}"
    hrefs = {link["href"] for link in view.links}
    assert source_url in hrefs, f"no link to the recording's page {source_url}; links: {sorted(hrefs)}"


def test_a_hotkey_picks_a_class_and_ctrl_enter_submits(view: View) -> None:
    osm_label = view.data["osm_label"]
    keys = browser.choice_hotkeys(view.page)
    assert set(keys) == set(lsconfig.VERDICT_CHOICES), f"choices without a hotkey: {keys}"
    other = next(value for value in lsconfig.VERDICT_CHOICES if value != osm_label and len(keys[value]) == 1)
    view.page.keyboard.press(keys[other])
    browser.wait_for_choice(view.page, other)
    _screenshot(view.page, "ls-stream-hotkey-choice.png", view.shots)

    created = browser.submit(view.page, view.task["id"])
    assert lsconfig.read_verdict(created["result"]) == other

    # The server holds it: the SDK lists exactly this annotation on the task, by the admin who logged in …
    annotations = view.conn.client.annotations.list(id=view.task["id"])
    assert [(a.id, lsconfig.read_verdict(a.result)) for a in annotations] == [(created["id"], other)]
    me = view.conn.client.users.whoami()
    assert annotations[0].completed_by == me.id

    # … and `annotator ls pull` records it as the admin's correction of the OSM class.
    view.cli("ls", "pull", env=view.env)
    with session_scope(view.engine) as session:
        reviews = [(r.pair_id, r.annotator, r.verdict, r.predicted_label) for r in session.scalars(select(Review))]
    assert reviews == [(view.pair_id, view.login_email, other, osm_label)]
