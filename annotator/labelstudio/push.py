"""`annotator ls push`: pairs → Label Studio tasks, batched, idempotent and resumable (SPEC §7).

Long batch job: takes an engine and commits once per batch. The Label Studio task ids of a batch are stored in
``ls_tasks`` the moment the import request returns, so a push killed mid-way and rerun never pushes a pair twice.
If the process dies between Label Studio creating a batch and the store committing it, the next push notices
(the project holds more tasks than the store knows) and adopts those tasks by the ``pair_id`` in their data
before importing anything.

Media reach the browser through Label Studio's local-files serving over the media directory (a local-files
import storage is attached to the project; the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` must be the
media directory, as ``annotator.labelstudio.server`` sets it) or, with ``media_base_url``, from another server.

Review order: the project uses *uncertainty sampling* with ``model_version`` set to the OSM predictions', so
annotators meet the least confident OSM labels first (notes/labelstudio.md). Conflicts found by earlier pulls
go to a separate adjudication project (see :mod:`annotator.review`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, selectinload

from annotator.config import StoreLocation
from annotator.errors import LabelStudioUnavailable
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.client import Connection, iter_task_pages
from annotator.review import current_votes
from annotator.store.engine import session_scope
from annotator.store.models import LabelStudioProject, LabelStudioTask, OsmEvidence, Pair
from annotator.vocabulary import FinalReason

DEFAULT_TITLE = "annotator review"
ADJUDICATION_SUFFIX = " – adjudication"
DEFAULT_BATCH_SIZE = 1000
REVIEW, ADJUDICATION = "review", "adjudication"
#: Task data key holding the pre-selected OSM class (the export lists predictions by id only; pull reads this).
OSM_LABEL_KEY = "osm_label"
SAMPLING = "Uncertainty sampling"


@dataclass
class PushReport:
    """What a push did, per project."""

    url: str
    title: str
    ls_project_id: int = 0
    pushed: int = 0
    already_pushed: int = 0
    adopted: int = 0  # tasks found in Label Studio that the store had not recorded (a push killed mid-way)
    without_media: int = 0
    with_prediction: int = 0
    batches: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    adjudication_title: str | None = None
    adjudication_pushed: int = 0
    model_versions: dict[str, int] = field(default_factory=dict)


def model_version_of(evidence: OsmEvidence) -> str:
    """Names the OSM source and its date, e.g. ``osm:demo.osm@2024-05-01`` (Label Studio keeps ≤ 255 chars)."""
    source = evidence.source
    if "://" not in source:
        source = Path(source).name
    date = evidence.source_date or evidence.queried_at.strftime("%Y-%m-%d")
    if re.match(r"\d{4}-\d{2}-\d{2}T", date):
        date = date[:10]
    return f"osm:{source}@{date}"[:255]


@dataclass(frozen=True)
class MediaRoute:
    """How a media path (relative to the media dir) becomes a URL the browser can load."""

    media_dir: Path
    files_root: Path  # Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (the media dir by default)
    base_url: str | None = None

    def url(self, relative: str) -> str:
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{quote(relative)}"
        served = (self.media_dir / relative).relative_to(self.files_root).as_posix()
        return f"/data/local-files/?d={quote(served)}"


def _evidence_texts(pair: Pair) -> dict[str, str]:
    ev = pair.osm_evidence
    pair_text = f"pair {pair.id} at {pair.lat:.6f}, {pair.lon:.6f}"
    if pair.origin != "original":
        pair_text += f" (offset {pair.direction} {pair.offset_m or 0:.0f} m from pair {pair.parent_pair_id})"
    if ev is None:
        return {"pair": pair_text, "osm": "not pre-labelled", "osm_tags": "—"}
    edit = f"; last edit {ev.last_edit_at:%Y-%m-%d}" if ev.last_edit_at else ""
    if ev.label:
        osm = f"{ev.label} (confidence {ev.confidence:.2f}{edit}; {model_version_of(ev)})"
    else:
        osm = f"no OSM class matched ({model_version_of(ev)}): choose from the image and the sound"
    tags = []
    for element in (ev.elements or [])[:6]:
        tag_text = ", ".join(f"{k}={v}" for k, v in sorted((element.get("tags") or {}).items())[:8])
        stamp = str(element.get("timestamp") or "")[:10]
        tags.append(f"{element.get('type', '?')} {element.get('id', '?')} v{element.get('version', '?')} "
                    f"({stamp or 'no date'}): {tag_text}")
    return {"pair": pair_text, "osm": osm, "osm_tags": "; ".join(tags) or "—"}


def build_task(pair: Pair, *, media: MediaRoute, note: str = "—", predict: bool = True) -> dict[str, Any]:
    """The Label Studio task of a pair: media URLs, evidence texts and (with an OSM class) a prediction."""
    assert pair.image_path and pair.clip_path
    data: dict[str, Any] = {
        "pair_id": pair.id,
        lsconfig.IMAGE: media.url(pair.image_path),
        lsconfig.AUDIO: media.url(pair.clip_path),
        **_evidence_texts(pair),
        "note": note,
    }
    task: dict[str, Any] = {"data": data}
    ev = pair.osm_evidence
    if predict and ev is not None and ev.label:
        data[OSM_LABEL_KEY] = ev.label
        task["predictions"] = [lsconfig.prediction(ev.label, model_version=model_version_of(ev), score=ev.confidence)]
    return task


def ensure_project(session: Session, conn: Connection, title: str, purpose: str) -> LabelStudioProject:
    """The store's project row for (URL, title, purpose); reuses a Label Studio project of that title or makes one.

    Raises:
        LabelStudioProjectGone: the store points at a project that was deleted in Label Studio.
    """
    if len(title.strip()) < 3:
        raise LabelStudioUnavailable(f"project title {title!r} is too short: Label Studio needs ≥ 3 characters")
    row = session.scalar(
        select(LabelStudioProject).where(
            LabelStudioProject.base_url == conn.url, LabelStudioProject.title == title,
            LabelStudioProject.purpose == purpose,
        )
    )
    client = conn.client
    if row is not None:
        with conn.errors(project_id=row.ls_project_id):
            client.projects.get(id=row.ls_project_id)
        return row
    with conn.errors():
        found = next((p for p in client.projects.list(title=title, page_size=100) if p.title == title), None)
        if found is None:
            found = client.projects.create(
                title=title, label_config=lsconfig.labelling_config(), sampling=SAMPLING,
                show_skip_button=True,
                description=f"annotator {purpose} project: verify the OSM scene class of each pair",
            )
    row = LabelStudioProject(base_url=conn.url, ls_project_id=int(found.id), title=title, purpose=purpose)
    session.add(row)
    session.flush()
    return row


def ensure_local_storage(conn: Connection, ls_project_id: int, media_dir: Path, folders: set[str]) -> None:
    """Attach local-files import storages covering `folders` of the media dir (needed for /data/local-files/ URLs).

    Label Studio refuses a storage at the document root itself, so there is one per top folder (images, clips).
    """
    from label_studio_sdk.core.api_error import ApiError

    storage = conn.client.import_storage.local
    with conn.errors(project_id=ls_project_id):
        existing = {getattr(s, "path", None) for s in storage.list(project=ls_project_id)}
    for folder in sorted(folders):
        path = str(media_dir / folder)
        if path in existing:
            continue
        try:
            storage.create(project=ls_project_id, path=path, use_blob_urls=True, title=f"annotator {folder}")
        except ApiError as exc:
            if exc.status_code != 400:
                with conn.errors(project_id=ls_project_id):
                    raise
            raise LabelStudioUnavailable(
                f"Label Studio cannot serve files from {path}: start it with local-files serving rooted at the "
                "media directory (python -m annotator.labelstudio.server start …), or pass --media-base-url"
            ) from None


def _top_folders(session: Session, pair_ids: list[int]) -> set[str]:
    folders: set[str] = set()
    for start in range(0, len(pair_ids), 500):
        rows = session.execute(select(Pair.image_path, Pair.clip_path).where(Pair.id.in_(pair_ids[start:start + 500])))
        for paths in rows:
            for rel in paths:
                parts = Path(rel).parts
                if len(parts) < 2:
                    raise LabelStudioUnavailable(
                        f"media file {rel!r} lies directly in the media directory; Label Studio serves only files "
                        "in its subfolders (images/, clips/) — pass --media-base-url to serve it elsewhere"
                    )
                folders.add(parts[0])
    return folders


def adopt_orphan_tasks(session: Session, conn: Connection, project: LabelStudioProject) -> int:
    """Record tasks that exist in Label Studio but not in the store (a push killed after import, before commit)."""
    with conn.errors(project_id=project.ls_project_id):
        remote = conn.client.projects.get(id=project.ls_project_id)
    known = session.scalar(select(func.count()).where(LabelStudioTask.project_id == project.id)) or 0
    if int(getattr(remote, "task_number", 0) or 0) <= known:
        return 0
    recorded = set(session.scalars(select(LabelStudioTask.ls_task_id).where(LabelStudioTask.project_id == project.id)))
    have_pairs = set(session.scalars(select(LabelStudioTask.pair_id).where(LabelStudioTask.project_id == project.id)))
    adopted = 0
    for page in iter_task_pages(conn, project.ls_project_id, page_size=1000, fields="task_only"):
        for task in page:
            data = task.get("data") or {}
            pair_id = data.get("pair_id")
            if task["id"] in recorded or not isinstance(pair_id, int) or pair_id in have_pairs:
                continue
            pair = session.get(Pair, pair_id)
            # Only a task made for this very pair (same media) is adopted, not one of another store's pair 7.
            if pair is None or not pair.image_path or not str(data.get(lsconfig.IMAGE, "")).endswith(
                    quote(pair.image_path)):
                continue
            session.add(LabelStudioTask(project_id=project.id, pair_id=pair_id, ls_task_id=int(task["id"])))
            have_pairs.add(pair_id)
            adopted += 1
    return adopted


def _import_batch(conn: Connection, project: LabelStudioProject, tasks: list[dict[str, Any]]) -> list[int]:
    with conn.errors(project_id=project.ls_project_id):
        response = conn.client.projects.import_tasks(id=project.ls_project_id, request=tasks, return_task_ids=True)
    ids = [int(i) for i in (response.task_ids or [])]
    if len(ids) != len(tasks):
        raise LabelStudioUnavailable(
            f"Label Studio created {len(ids)} tasks for a batch of {len(tasks)}; run `annotator ls push` again"
        )
    return ids


def _push_pending(
    engine: Engine, conn: Connection, project_id: int, pending_ids: list[int], *, batch_size: int,
    media: MediaRoute, note_of: Callable[[Pair], str] | None, on_batch: Callable[[int], None] | None,
) -> tuple[int, int, Counter[str]]:
    """Import `pending_ids` in batches; each batch's task ids committed with it. Returns (pushed, batches, mvs)."""
    pushed = batches = 0
    versions: Counter[str] = Counter()
    for start in range(0, len(pending_ids), batch_size):
        chunk = pending_ids[start : start + batch_size]
        with session_scope(engine) as session:
            project = session.get(LabelStudioProject, project_id)
            assert project is not None
            pairs = session.scalars(
                select(Pair).where(Pair.id.in_(chunk)).options(selectinload(Pair.osm_evidence)).order_by(Pair.id)
            ).all()
            tasks = [
                build_task(p, media=media, note=note_of(p) if note_of else "—",
                           predict=note_of is None)
                for p in pairs
            ]
            ids = _import_batch(conn, project, tasks)
            session.add_all(
                LabelStudioTask(project_id=project.id, pair_id=p.id, ls_task_id=i)
                for p, i in zip(pairs, ids, strict=True)
            )
            versions.update(t["predictions"][0]["model_version"] for t in tasks if t.get("predictions"))
        pushed += len(pairs)
        batches += 1
        if on_batch is not None:
            on_batch(len(pairs))
    return pushed, batches, versions


def _pending_pairs(
    session: Session, project: LabelStudioProject, only: list[int] | None = None
) -> tuple[list[int], int]:
    """Ids of pairs with both media files not yet in `project`, and how many lack media."""
    pushed = select(LabelStudioTask.pair_id).where(LabelStudioTask.project_id == project.id)
    query = select(Pair.id, Pair.image_path, Pair.clip_path, Pair.image_status).where(Pair.id.not_in(pushed))
    if only is not None:
        query = query.where(Pair.id.in_(only))
    ready, missing = [], 0
    for pair_id, image, clip, status in session.execute(query.order_by(Pair.id)):
        if image and clip and status == "present":
            ready.append(pair_id)
        else:
            missing += 1
    return ready, missing


def push_pairs(
    engine: Engine, location: StoreLocation, conn: Connection, *, title: str = DEFAULT_TITLE,
    media_base_url: str | None = None, files_root: Path | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
) -> PushReport:
    """Push every pair not yet pushed (and conflicts for adjudication); commits per batch.

    Args:
        engine: the store (connected to already: `conn` checked the key, so failures before here wrote nothing).
        location: for the media directory served by local-files storage.
        conn: from :func:`annotator.labelstudio.client.connect`.
        title: the review project's title; the adjudication project is ``title + " – adjudication"``.
        media_base_url: serve media from here instead of Label Studio's local-files serving.
        files_root: the server's local-files document root when it is a parent of the media dir (default: the
            media dir itself, as ``annotator.labelstudio.server`` starts it).
        batch_size: tasks per import request (hundreds; ~80 ms per request).
        on_batch: called with the number of tasks after each committed batch (progress).
        on_total: called once with the number of tasks about to be pushed.
    """
    report = PushReport(url=conn.url, title=title, batch_size=batch_size)
    media_dir = location.media_dir.resolve()
    root = (files_root or media_dir).resolve()
    if not media_base_url and not media_dir.is_relative_to(root):
        raise LabelStudioUnavailable(f"the media dir {media_dir} is not inside the local-files root {root}")
    media = MediaRoute(media_dir=media_dir, files_root=root, base_url=media_base_url)
    with session_scope(engine) as session:
        project = ensure_project(session, conn, title, REVIEW)
        report.adopted = adopt_orphan_tasks(session, conn, project)
        session.flush()
        pending, report.without_media = _pending_pairs(session, project)
        if not media.base_url and pending:
            ensure_local_storage(conn, project.ls_project_id, media.media_dir, _top_folders(session, pending))
        report.already_pushed = session.scalar(
            select(func.count()).where(LabelStudioTask.project_id == project.id)) or 0
        report.ls_project_id, project_id = project.ls_project_id, project.id
        conflicts = list(session.scalars(select(Pair.id).where(Pair.final_reason == FinalReason.CONFLICT.value)))
    if on_total is not None:
        on_total(len(pending))
    pushed, report.batches, versions = _push_pending(
        engine, conn, project_id, pending, batch_size=batch_size, media=media, note_of=None,
        on_batch=on_batch,
    )
    report.pushed, report.model_versions = pushed, dict(versions)
    report.with_prediction = sum(versions.values())
    if versions:
        with conn.errors(project_id=report.ls_project_id):
            conn.client.projects.update(id=report.ls_project_id, model_version=versions.most_common(1)[0][0])
    if conflicts:
        report.adjudication_title = title + ADJUDICATION_SUFFIX
        report.adjudication_pushed = _push_adjudication(engine, conn, report.adjudication_title, conflicts,
                                                        media=media, batch_size=batch_size)
    return report


def _push_adjudication(engine: Engine, conn: Connection, title: str, conflicts: list[int],
                       *, media: MediaRoute, batch_size: int) -> int:
    with session_scope(engine) as session:
        project = ensure_project(session, conn, title, ADJUDICATION)
        adopt_orphan_tasks(session, conn, project)
        session.flush()
        pending, _ = _pending_pairs(session, project, only=conflicts)
        if not media.base_url and pending:
            ensure_local_storage(conn, project.ls_project_id, media.media_dir, _top_folders(session, pending))
        votes = current_votes(session, pending)
        notes = {
            pid: "Conflict — the annotators said: "
            + "; ".join(f"{r.annotator}: {r.verdict}" for r in votes.get(pid, []) if r.verdict != "skipped")
            + ". Your verdict counts as the deciding vote."
            for pid in pending
        }
        project_id = project.id
    pushed, _, _ = _push_pending(engine, conn, project_id, pending, batch_size=batch_size,
                                 media=media, note_of=lambda p: notes.get(p.id, "—"), on_batch=None)
    return pushed
