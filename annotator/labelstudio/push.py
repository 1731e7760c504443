"""`annotator ls push`: pairs → Label Studio tasks, batched, idempotent and resumable (SPEC §7).

A long batch job in the caller's :class:`~annotator.store.UnitOfWork`. Its batches: the project row and any
adopted tasks first, then one per import request — the Label Studio task ids of a batch are committed the moment
the import request returns, so a push killed mid-way and rerun never pushes a pair twice. If the process dies
between Label Studio creating a batch and the store committing it, the next push notices (the project holds more
tasks than the store knows) and adopts those tasks by the ``pair_id`` in their data before importing anything.

Tasks are built by :mod:`annotator.labelstudio.tasks` (media URLs: local-files serving over the media directory,
or ``media_base_url``).

Review order (:mod:`annotator.labelstudio.queue`): the project uses *uncertainty sampling*; with ``--order rank``
(the default once `annotator rank` has run) its ``model_version`` is the latest rank run's, so annotators meet the
most suspicious labels first, and tasks pushed earlier and not reviewed yet get that run's prediction in place;
with ``--order osm`` it is the OSM predictions', so they meet the least confident OSM labels first
(notes/labelstudio.md). Conflicts found by earlier pulls go to a separate adjudication project (see
:mod:`annotator.review`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from annotator.config import StoreLocation
from annotator.errors import LabelStudioUnavailable
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.client import Connection, find_project_id, iter_task_pages
from annotator.labelstudio.queue import (
    UNCERTAINTY_SAMPLING,
    QueueRefresh,
    Ranking,
    ReviewOrder,
    find_stale_tasks,
    latest_ranking,
    order_queue,
    refresh_stale_tasks,
    resolve_order,
)
from annotator.labelstudio.tasks import NO_NOTE, MediaRoute, build_task, is_rank_prediction
from annotator.review import current_votes
from annotator.store.engine import UnitOfWork
from annotator.store.models import LabelStudioProject, LabelStudioTask, Pair
from annotator.vocabulary import FinalReason, ImageStatus, ProjectPurpose, Verdict

DEFAULT_TITLE = "annotator review"
ADJUDICATION_SUFFIX = " – adjudication"
DEFAULT_BATCH_SIZE = 1000
SAMPLING = UNCERTAINTY_SAMPLING
_ID_CHUNK = 500  # ids per IN (...) query


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
    model_versions: dict[str, int] = field(default_factory=dict)  # OSM model version → tasks pushed now
    order: ReviewOrder = ReviewOrder.OSM
    rank_run: int | None = None  # the latest rank run, whose suggestion the tasks show
    queue_model_version: str | None = None  # whose prediction scores Label Studio serves lowest first
    with_rank_prediction: int = 0  # tasks pushed now with the rank run's prediction
    updated_in_place: int = 0  # tasks pushed earlier, not reviewed, given the rank run's prediction now
    already_current: int = 0  # tasks pushed earlier, not reviewed, already showing the rank run
    reviewed_untouched: int = 0  # tasks pushed earlier and reviewed (or skipped): never touched


def ensure_project(session: Session, conn: Connection, title: str, purpose: ProjectPurpose) -> LabelStudioProject:
    """The store's project row for (URL, title, purpose); reuses a Label Studio project of that title or makes one.

    Raises:
        LabelStudioProjectGone: the store points at a project that was deleted in Label Studio.
    """
    if len(title.strip()) < 3:
        raise LabelStudioUnavailable(f"project title {title!r} is too short: Label Studio needs ≥ 3 characters")
    row = session.scalar(
        select(LabelStudioProject).where(
            LabelStudioProject.base_url == conn.url,
            LabelStudioProject.title == title,
            LabelStudioProject.purpose == purpose,
        )
    )
    if row is not None:
        _keep_config_current(conn, row.ls_project_id)
        return row
    ls_project_id = _titled_project(conn, title, purpose)
    row = LabelStudioProject(base_url=conn.url, ls_project_id=ls_project_id, title=title, purpose=purpose)
    session.add(row)
    session.flush()
    return row


def _titled_project(conn: Connection, title: str, purpose: ProjectPurpose) -> int:
    """The id of the Label Studio project titled `title`, made (with the labelling config) when there is none."""
    found = find_project_id(conn, title)
    if found is not None:
        _keep_config_current(conn, found)
        return found
    with conn.errors():
        created = conn.client.projects.create(
            title=title,
            label_config=lsconfig.labelling_config(),
            sampling=SAMPLING,
            show_skip_button=True,
            description=f"annotator {purpose} project: verify the OSM scene class of each pair",
        )
    if created.id is None:
        raise LabelStudioUnavailable(f"Label Studio at {conn.shown_url} created project {title!r} without an id")
    return int(created.id)


def _keep_config_current(conn: Connection, ls_project_id: int) -> None:
    """Give a project made by an earlier version the current labelling config (a field added, none removed)."""
    with conn.errors(project_id=ls_project_id):
        remote = conn.client.projects.get(id=ls_project_id)
        current = getattr(remote, "label_config", None)
        if current and current != lsconfig.labelling_config():
            conn.client.projects.update(id=ls_project_id, label_config=lsconfig.labelling_config())


def ensure_local_storage(conn: Connection, ls_project_id: int, media_dir: Path, folders: set[str]) -> None:
    """Attach local-files import storages covering `folders` of the media dir (needed for /data/local-files/ URLs).

    Label Studio refuses a storage at the document root itself, so there is one per top folder (images, clips).
    """
    from label_studio_sdk.core.api_error import ApiError  # the SDK takes ~1 s to import

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
    for start in range(0, len(pair_ids), _ID_CHUNK):
        chunk = pair_ids[start : start + _ID_CHUNK]
        for paths in session.execute(select(Pair.image_path, Pair.clip_path).where(Pair.id.in_(chunk))):
            for rel in paths:
                parts = Path(rel).parts
                if len(parts) < 2:
                    raise LabelStudioUnavailable(
                        f"media file {rel!r} lies directly in the media directory; Label Studio serves only files "
                        "in its subfolders (images/, clips/) — pass --media-base-url to serve it elsewhere"
                    )
                folders.add(parts[0])
    return folders


def _made_for(task_data: dict[str, Any], pair: Pair | None) -> bool:
    """Whether a task was made for this very pair (same media), not for another store's pair of that id."""
    if pair is None or not pair.image_path:
        return False
    return str(task_data.get(lsconfig.IMAGE, "")).endswith(quote(pair.image_path))


def adopt_orphan_tasks(session: Session, conn: Connection, project: LabelStudioProject) -> int:
    """Record tasks that exist in Label Studio but not in the store (a push killed after import, before commit)."""
    with conn.errors(project_id=project.ls_project_id):
        remote = conn.client.projects.get(id=project.ls_project_id)
    of_project = LabelStudioTask.project_id == project.id
    known = session.scalar(select(func.count()).where(of_project)) or 0
    if int(getattr(remote, "task_number", 0) or 0) <= known:
        return 0
    recorded = set(session.scalars(select(LabelStudioTask.ls_task_id).where(of_project)))
    have_pairs = set(session.scalars(select(LabelStudioTask.pair_id).where(of_project)))
    adopted = 0
    for page in iter_task_pages(conn, project.ls_project_id, page_size=1000, fields="task_only"):
        for task in page:
            data = task.get("data") or {}
            pair_id = data.get("pair_id")
            if task["id"] in recorded or not isinstance(pair_id, int) or pair_id in have_pairs:
                continue
            if not _made_for(data, session.get(Pair, pair_id)):
                continue
            session.add(LabelStudioTask(project_id=project.id, pair_id=pair_id, ls_task_id=int(task["id"])))
            have_pairs.add(pair_id)
            adopted += 1
    return adopted


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
        if image and clip and status == ImageStatus.PRESENT:
            ready.append(pair_id)
        else:
            missing += 1
    return ready, missing


@dataclass
class _PreparedProject:
    """A project ready to receive tasks: orphans adopted, storages attached, what is left to push."""

    project: LabelStudioProject
    adopted: int
    already_pushed: int  # tasks the store knows in the project (adopted ones included)
    pending: list[int]
    without_media: int


def _prepare_project(
    session: Session,
    conn: Connection,
    title: str,
    purpose: ProjectPurpose,
    media: MediaRoute,
    only: list[int] | None = None,
) -> _PreparedProject:
    """Find or make the project, adopt orphan tasks, list the pairs to push and attach the media storages."""
    project = ensure_project(session, conn, title, purpose)
    adopted = adopt_orphan_tasks(session, conn, project)
    session.flush()
    pending, without_media = _pending_pairs(session, project, only)
    if not media.base_url and pending:
        ensure_local_storage(conn, project.ls_project_id, media.media_dir, _top_folders(session, pending))
    already_pushed = session.scalar(select(func.count()).where(LabelStudioTask.project_id == project.id)) or 0
    return _PreparedProject(project, adopted, already_pushed, pending, without_media)


def _import_batch(conn: Connection, project: LabelStudioProject, tasks: list[dict[str, Any]]) -> list[int]:
    with conn.errors(project_id=project.ls_project_id):
        # The SDK types `request` as its request models; it sends plain task dicts as they are.
        response = conn.client.projects.import_tasks(
            id=project.ls_project_id,
            request=tasks,  # type: ignore[arg-type]
            return_task_ids=True,
        )
    # `task_ids` is an extra field of the response model, present when return_task_ids is set.
    ids = [int(i) for i in (getattr(response, "task_ids", None) or [])]
    if len(ids) != len(tasks):
        raise LabelStudioUnavailable(
            f"Label Studio created {len(ids)} tasks for a batch of {len(tasks)}; run `annotator ls push` again"
        )
    return ids


@dataclass
class _Pushed:
    """What :func:`_push_pending` did."""

    tasks: int = 0
    batches: int = 0
    model_versions: Counter[str] = field(default_factory=Counter)  # of the OSM predictions
    with_rank: int = 0


def _push_pending(
    work: UnitOfWork,
    conn: Connection,
    project: LabelStudioProject,
    pending_ids: list[int],
    *,
    batch_size: int,
    media: MediaRoute,
    note_of: Callable[[Pair], str] | None,
    on_batch: Callable[[int], None] | None,
    ranking: Ranking | None = None,
) -> _Pushed:
    """Import `pending_ids` in batches, committing each batch's task ids with it (then calling `on_batch`).

    Without `note_of` the tasks carry the OSM prediction and the `ranking`'s; with it, a note and no
    pre-selected answer. Either way they show the `ranking`'s suggestion as text.
    """
    done = _Pushed()
    session = work.session
    for start in range(0, len(pending_ids), batch_size):
        chunk = pending_ids[start : start + batch_size]
        pairs = session.scalars(
            select(Pair).where(Pair.id.in_(chunk)).options(selectinload(Pair.osm_evidence)).order_by(Pair.id)
        ).all()
        tasks = [
            build_task(
                p,
                media=media,
                note=note_of(p) if note_of else NO_NOTE,
                predict=note_of is None,
                rank=ranking.of(p.id) if ranking else None,
            )
            for p in pairs
        ]
        ids = _import_batch(conn, project, tasks)
        session.add_all(
            LabelStudioTask(project_id=project.id, pair_id=p.id, ls_task_id=i) for p, i in zip(pairs, ids, strict=True)
        )
        work.commit_batch()
        predictions = [p for t in tasks for p in t.get("predictions") or []]
        done.model_versions.update(p["model_version"] for p in predictions if not is_rank_prediction(p))
        done.with_rank += sum(1 for p in predictions if is_rank_prediction(p))
        done.tasks += len(pairs)
        done.batches += 1
        if on_batch is not None:
            on_batch(len(pairs))
    return done


def push_pairs(
    work: UnitOfWork,
    location: StoreLocation,
    conn: Connection,
    *,
    title: str = DEFAULT_TITLE,
    media_base_url: str | None = None,
    files_root: Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    order: ReviewOrder | str | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> PushReport:
    """Push every pair not yet pushed (and conflicts for adjudication); one committed batch per import request.

    With a rank run in the store, every task pushed now carries its prediction too, and the unreviewed tasks
    pushed earlier are given the latest run's prediction in place (:mod:`annotator.labelstudio.queue`).

    Args:
        work: the store's unit of work (connected to already: `conn` checked the key, so failures before here
            wrote nothing).
        location: for the media directory served by local-files storage.
        conn: from :func:`annotator.labelstudio.client.connect`.
        title: the review project's title; the adjudication project is ``title + " – adjudication"``.
        media_base_url: serve media from here instead of Label Studio's local-files serving.
        files_root: the server's local-files document root when it is a parent of the media dir (default: the
            media dir itself, as ``annotator.labelstudio.server`` starts it).
        batch_size: tasks per import request (hundreds; ~80 ms per request).
        order: which score Label Studio serves lowest first: ``rank`` (the most suspicious label first; the
            default when a rank run exists) or ``osm`` (the least confident OSM match first).
        on_batch: called with the number of tasks after each committed batch (progress).
        on_total: called once with the number of steps ahead: tasks to push, and two per task to update.

    Raises:
        NoRankRun: ``order="rank"`` without a rank run (nothing is pushed).
    """
    session = work.session
    ranking = latest_ranking(session)
    chosen = resolve_order(order, ranking)
    report = PushReport(url=conn.shown_url, title=title, batch_size=batch_size, order=chosen)
    report.rank_run = ranking.run_id if ranking else None
    media = MediaRoute.checked(location.media_dir, files_root, media_base_url)
    review = _prepare_project(session, conn, title, ProjectPurpose.REVIEW, media)
    report.ls_project_id, report.already_pushed = review.project.ls_project_id, review.already_pushed
    report.adopted, report.without_media = review.adopted, review.without_media
    conflicts = list(session.scalars(select(Pair.id).where(Pair.final_reason == FinalReason.CONFLICT)))
    work.commit_batch()  # the project row and the adopted tasks
    stale = find_stale_tasks(session, conn, review.project, ranking) if ranking else QueueRefresh()
    report.already_current, report.reviewed_untouched = stale.current, stale.reviewed
    if on_total is not None:
        on_total(len(review.pending) + 2 * len(stale.candidates))  # an update is two steps (queue.py)
    pushed = _push_pending(
        work,
        conn,
        review.project,
        review.pending,
        batch_size=batch_size,
        media=media,
        note_of=None,
        on_batch=on_batch,
        ranking=ranking,
    )
    report.pushed, report.batches, report.model_versions = pushed.tasks, pushed.batches, dict(pushed.model_versions)
    report.with_prediction, report.with_rank_prediction = pushed.model_versions.total(), pushed.with_rank
    # The order first: the tasks updated next join the rank queue as their prediction is replaced.
    report.queue_model_version = order_queue(session, conn, review.project, chosen, ranking, pushed.model_versions)
    if ranking is not None and stale.candidates:
        report.updated_in_place = refresh_stale_tasks(session, conn, review.project, ranking, stale, on_batch=on_batch)
    if conflicts:
        report.adjudication_title = title + ADJUDICATION_SUFFIX
        report.adjudication_pushed = _push_adjudication(
            work, conn, report.adjudication_title, conflicts, media=media, batch_size=batch_size, ranking=ranking
        )
    return report


def adjudication_notes(session: Session, pair_ids: list[int]) -> dict[int, str]:
    """The note of each pair's adjudication task: the conflicting verdicts (skips left out)."""
    votes = current_votes(session, pair_ids)
    return {
        pid: "Conflict — the annotators said: "
        + "; ".join(f"{r.annotator}: {r.verdict}" for r in votes.get(pid, []) if r.verdict != Verdict.SKIPPED)
        + ". Your verdict counts as the deciding vote."
        for pid in pair_ids
    }


def _push_adjudication(
    work: UnitOfWork,
    conn: Connection,
    title: str,
    conflicts: list[int],
    *,
    media: MediaRoute,
    batch_size: int,
    ranking: Ranking | None,
) -> int:
    """Push the pairs in conflict not yet in the adjudication project; returns how many were pushed."""
    adjudication = _prepare_project(work.session, conn, title, ProjectPurpose.ADJUDICATION, media, only=conflicts)
    notes = adjudication_notes(work.session, adjudication.pending)
    work.commit_batch()  # the project row and the adopted tasks
    pushed = _push_pending(
        work,
        conn,
        adjudication.project,
        adjudication.pending,
        batch_size=batch_size,
        media=media,
        note_of=lambda p: notes.get(p.id, NO_NOTE),
        on_batch=None,
        ranking=ranking,
    )
    return pushed.tasks
