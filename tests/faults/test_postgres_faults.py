"""A team on one PostgreSQL store (issue 11): two curators' processes writing it at the same moment.

Issue 11 found two imports (or pre-labellings) at once dying with ``IntegrityError``; on a shared server store
that is the everyday case. Each test starts two real ``annotator`` processes against one database of the
session's throwaway PostgreSQL server (tests/pgserver.py), the URL in ``ANNOTATOR_DB`` as a team passes it, and
checks both exit 0 without a traceback and the store ends exactly as after one run, nothing lost and nothing
twice. Label Studio's push and pull run against the real server of tests/labelstudio/conftest.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from annotator.config import resolve_store
from annotator.labelstudio.client import connect
from annotator.store import open_store, upgrade_to_head
from annotator.store.engine import session_scope
from annotator.store.models import (
    ImportReject,
    LabelStudioProject,
    LabelStudioTask,
    OsmEvidence,
    Pair,
    Recording,
    Review,
)
from annotator.vocabulary import SceneClass
from tests.data.generate import make_audio, write_csv_manifest
from tests.faults.conftest import Fault
from tests.labelstudio.conftest import ls, ls_files_root  # noqa: F401 - the real Label Studio server fixtures
from tests.labelstudio.helpers import annotate, make_annotator, remote_tasks
from tests.labelstudio.pairs import make_pairs
from tests.osm.conftest import KOTKA_PBF, add_pairs
from tests.pgserver import PostgresServer

ANNOTATOR = Path(sys.executable).with_name("annotator")
RUN_TIMEOUT_S = 300
KOTKA_POINTS = [(60.52645, 26.95121), (60.52235, 26.93506), (60.53471, 26.94508), (60.5390, 26.9680)]


class Store:
    """One fresh database on the session's server, at head, with its media folder."""

    def __init__(self, server: PostgresServer, folder: Path) -> None:
        self.url = server.create_database("team")
        self.location = resolve_store(self.url, folder / "media")
        self.location.media_dir.mkdir(parents=True, exist_ok=True)
        self.engine = open_store(self.location, create=True)
        upgrade_to_head(self.engine)
        self.folder = folder

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a curator's shell: the store's URL in ANNOTATOR_DB, never on the command line."""
        return {**os.environ, "ANNOTATOR_DB": self.url, **(extra or {})}

    def together(self, *args: str, env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess[str]]:
        """Run ``annotator --media-dir MEDIA ARGS`` twice at the same time; both results, in start order."""
        command = [str(ANNOTATOR), "--media-dir", str(self.location.media_dir), *args]
        procs = [
            subprocess.Popen(
                command, cwd=self.folder, env=self.env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
            results.append(subprocess.CompletedProcess(command, proc.returncode, stdout, stderr))
        return results

    def once(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(ANNOTATOR), "--media-dir", str(self.location.media_dir), *args]
        return subprocess.run(
            command, cwd=self.folder, env=self.env(env), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )


@pytest.fixture
def stores(postgres: PostgresServer) -> Iterator[list[Store]]:
    """The databases a test made on the session's server; disposed and dropped when the test ends."""
    made: list[Store] = []
    yield made
    for store in made:
        store.engine.dispose()
        postgres.drop_database(store.url)


@pytest.fixture
def new_store(postgres: PostgresServer, stores: list[Store], tmp_path: Path) -> Callable[..., Store]:
    """Makes a fresh store on the session's server (folder: tmp_path/NAME unless given)."""

    def make(name: str, folder: Path | None = None) -> Store:
        store = Store(postgres, folder or tmp_path / name)
        stores.append(store)
        return store

    return make


def _assert_both_clean(results: list[subprocess.CompletedProcess[str]]) -> None:
    for result in results:
        assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr
        assert "IntegrityError" not in result.stdout + result.stderr


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _import_state(store: Store) -> dict[str, Any]:
    """What an import leaves, independent of row ids: recordings, their pairs' clips (by content), rejects."""
    with session_scope(store.engine) as session:
        recordings = session.scalars(select(Recording).options(selectinload(Recording.pairs))).all()
        by_id = {
            r.source_id: (
                r.sha256,
                r.status.value,
                r.duration_s,
                sorted(
                    (p.clip_start_s, _sha(store.location.media_dir / p.clip_path) if p.clip_path else None)
                    for p in r.pairs
                ),
            )
            for r in recordings
        }
        rejects = sorted((j.line, j.reason) for j in session.scalars(select(ImportReject)))
    return {"recordings": by_id, "rows": len(recordings), "rejects": rejects}


def _corpus(folder: Path, n: int) -> Path:
    rows: list[dict[str, object]] = []
    for i in range(n):
        make_audio(folder / f"r{i}.wav", 3.0 + (i % 4), 8000 + 1000 * (i % 3), 1, seed=i)
        rows.append({"recording_id": f"r{i}", "lat": 60 + i / 1000, "lon": 25, "audio": f"r{i}.wav"})
    rows.append({"recording_id": "gone", "lat": 60, "lon": 25, "audio": "missing.wav"})  # one reject, both runs
    return write_csv_manifest(folder / "manifest.csv", rows)


def test_two_imports_of_one_manifest_at_once(fault: Fault, new_store: Any, tmp_path: Path) -> None:
    n = 40
    manifest = _corpus(tmp_path / "corpus", n)
    alone, team = new_store("alone"), new_store("team")
    single = alone.once("import", str(manifest), "--batch-size", "4", "--rejects", str(tmp_path / "alone.csv"))
    _assert_both_clean([single])

    results = team.together("import", str(manifest), "--batch-size", "4")
    state, expected = _import_state(team), _import_state(alone)
    fault.lost(len(set(expected["recordings"]) - set(state["recordings"])))
    assert fault.rows_lost == 0
    _assert_both_clean(results)
    assert state == expected  # every recording once, one pair each, the same clips, the one reject once


def _evidence(store: Store) -> dict[tuple[float, float], tuple[str | None, str]]:
    with session_scope(store.engine) as session:
        rows = session.execute(select(Pair.lat, Pair.lon, OsmEvidence.label, OsmEvidence.source).join(OsmEvidence))
        found: dict[tuple[float, float], tuple[str | None, str]] = {}
        for lat, lon, label, source in rows:
            assert (lat, lon) not in found, f"two evidence rows for the pair at {lat}, {lon}"
            found[(lat, lon)] = (label, source)
        return found


def test_two_prelabels_at_once(fault: Fault, new_store: Any) -> None:
    points = [(lat + k * 1e-4, lon - k * 1e-4) for k in range(6) for lat, lon in KOTKA_POINTS]
    alone, team = new_store("alone"), new_store("team")
    for store in (alone, team):
        add_pairs(store.engine, points)
    _assert_both_clean([alone.once("prelabel", "--osm-file", str(KOTKA_PBF))])

    results = team.together("prelabel", "--osm-file", str(KOTKA_PBF))
    expected, got = _evidence(alone), _evidence(team)
    fault.lost(len(set(expected) - set(got)))
    assert fault.rows_lost == 0
    _assert_both_clean(results)
    assert got == expected and len(got) == len(points)


@pytest.fixture
def ls_env(ls: Any, ls_files_root: Path) -> dict[str, str]:  # noqa: F811 - `ls` is the imported fixture
    return {
        "LABEL_STUDIO_URL": ls.url,
        "LABEL_STUDIO_API_KEY": ls.api_key,
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(ls_files_root),
    }


LABELS = [SceneClass.BRIDGE, SceneClass.ORCHARD, None, SceneClass.AIRPORT, SceneClass.BEACH, SceneClass.LAKE] * 2


def _pushed(store: Store) -> list[int]:
    with session_scope(store.engine) as session:
        return sorted(session.scalars(select(LabelStudioTask.pair_id)))


def test_two_ls_pushes_at_once(fault: Fault, new_store: Any, ls_files_root: Path, ls_env: dict[str, str]) -> None:  # noqa: F811
    team = new_store("team", ls_files_root / f"team-{uuid.uuid4().hex[:8]}")
    ids = make_pairs(team.engine, team.location.media_dir, LABELS)
    title = f"team push {uuid.uuid4().hex[:8]}"
    results = team.together("ls", "push", "--project", title, "--batch-size", "2", env=ls_env)

    pushed = _pushed(team)
    conn = connect(ls_env["LABEL_STUDIO_URL"], ls_env["LABEL_STUDIO_API_KEY"])
    with session_scope(team.engine) as session:
        projects = session.scalars(select(LabelStudioProject.ls_project_id)).all()
    remote = [t["data"]["pair_id"] for p in projects for t in remote_tasks(conn, p)]
    fault.lost(len(set(ids) - set(pushed)) + len(set(ids) - set(remote)))
    assert fault.rows_lost == 0
    _assert_both_clean(results)
    assert len(projects) == 1, "both processes made a project of the same title"
    assert pushed == ids and sorted(remote) == ids  # each pair once, in the store and on the server


def test_two_ls_pulls_at_once(fault: Fault, new_store: Any, ls_files_root: Path, ls_env: dict[str, str]) -> None:  # noqa: F811
    team = new_store("team", ls_files_root / f"team-{uuid.uuid4().hex[:8]}")
    ids = make_pairs(team.engine, team.location.media_dir, LABELS)
    title = f"team pull {uuid.uuid4().hex[:8]}"
    _assert_both_clean([team.once("ls", "push", "--project", title, env=ls_env)])
    conn = connect(ls_env["LABEL_STUDIO_URL"], ls_env["LABEL_STUDIO_API_KEY"])
    with session_scope(team.engine) as session:
        tasks = dict(session.execute(select(LabelStudioTask.pair_id, LabelStudioTask.ls_task_id)).all())
    curator, _ = make_annotator(conn, "curator")
    verdicts = {pair: SceneClass.FOREST if n % 2 else SceneClass.HARBOUR for n, pair in enumerate(ids)}
    for pair, verdict in verdicts.items():
        annotate(conn, tasks[pair], verdict, curator)

    results = team.together("ls", "pull", env=ls_env)
    with session_scope(team.engine) as session:
        reviews = session.execute(select(Review.pair_id, Review.verdict, Review.ls_annotation_id)).all()
        finals = dict(session.execute(select(Pair.id, Pair.final_label)).all())
    fault.lost(len(set(ids) - {pair for pair, _, _ in reviews}))
    assert fault.rows_lost == 0
    _assert_both_clean(results)
    assert len(reviews) == len(ids), "an annotation was recorded twice"
    assert {pair: finals[pair] for pair in ids} == {pair: verdict.value for pair, verdict in verdicts.items()}


def test_recording_id_longer_than_its_column_is_a_reject_not_an_abort(
    fault: Fault, new_store: Callable[..., Store], tmp_path: Path
) -> None:
    # SQLite stores any length in a VARCHAR(128); PostgreSQL refuses it, and the whole import died with
    # "value too long for type character varying(128)" (found running the import tests on PostgreSQL).
    folder = tmp_path / "corpus"
    rows: list[dict[str, object]] = []
    for i in range(3):
        make_audio(folder / f"r{i}.wav", 3.0, 8000, 1, seed=i)
        rows.append({"recording_id": f"r{i}", "lat": 60, "lon": 25, "audio": f"r{i}.wav"})
    rows.insert(1, {"recording_id": "x" * 200, "lat": 60, "lon": 25, "audio": "r0.wav"})
    rows.append({"recording_id": "y" * 300, "lat": 60, "lon": 25, "audio": "missing.wav"})
    manifest = write_csv_manifest(folder / "manifest.csv", rows)
    team = new_store("team")
    result = team.once("import", str(manifest), "--rejects", str(tmp_path / "rejects.csv"))
    with session_scope(team.engine) as session:
        imported = set(session.scalars(select(Recording.source_id)))
        rejected = {(line, reason) for line, reason in session.execute(select(ImportReject.line, ImportReject.reason))}
    fault.lost(len({"r0", "r1", "r2"} - imported))
    assert fault.rows_lost == 0
    _assert_both_clean([result])
    assert imported == {"r0", "r1", "r2"}
    assert (2, "bad_field") in rejected and any(line == 5 for line, _ in rejected)
