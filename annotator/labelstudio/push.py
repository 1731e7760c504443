"""`annotator ls push`: pairs → Label Studio tasks, batched, idempotent and resumable (SPEC §7).

A long batch job in the caller's :class:`~annotator.store.UnitOfWork`. Its batches: the project row and any
adopted tasks first, then one per import request — the Label Studio task ids of a batch are committed the moment
the import request returns, so a push killed mid-way and rerun never pushes a pair twice. If the process dies
between Label Studio creating a batch and the store committing it, the next push notices (the project holds more
tasks than the store knows) and adopts those tasks by the ``pair_id`` in their data before importing anything.

Tasks are built by :mod:`annotator.labelstudio.tasks` (media URLs: local-files serving over the media directory,
or ``media_base_url``), each batch's overlay images rendered first (:mod:`annotator.labelstudio.overlays`). Before
the first task is created, one task's image, audio and overlay are fetched as a browser would
(:mod:`annotator.labelstudio.media_check`): media that would not show stop the push with nothing created.

The review design (issue 14; :class:`ReviewDesign`): ``overlap`` annotators per task (for all tasks, or a seeded
share), control items (a second task of a pair whose label is settled, to measure the annotators) and a seeded
blind share pushed without the pre-selected suggestion; the shares are drawn by :mod:`annotator.labelstudio.sampling`.

Review order (:mod:`annotator.labelstudio.queue`): the project uses *uncertainty sampling*; with ``--order rank``
(the default once `annotator rank` has run) its ``model_version`` is the latest rank run's, so annotators meet the
most suspicious labels first, and tasks pushed earlier and not reviewed yet get that run's prediction in place;
with ``--order osm`` it is the OSM predictions', so they meet the least confident OSM labels first
(notes/labelstudio.md). Conflicts found by earlier pulls go to a separate adjudication project (see
:mod:`annotator.review`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from annotator.config import StoreLocation
from annotator.errors import LabelStudioUnavailable
from annotator.labelstudio.client import Connection
from annotator.labelstudio.media_check import MediaGate, MediaNotServed
from annotator.labelstudio.overlays import OVERLAY_FOLDER, ensure_overlays
from annotator.labelstudio.project import (
    META_BLIND,
    META_KIND,
    OverlapSetting,
    adopt_orphan_tasks,
    ensure_local_storage,
    ensure_project,
    set_project_overlap,
    set_task_overlaps,
)
from annotator.labelstudio.queue import (
    QueueRefresh,
    Ranking,
    ReviewOrder,
    find_stale_tasks,
    latest_ranking,
    order_queue,
    refresh_stale_tasks,
    resolve_order,
)
from annotator.labelstudio.sampling import ReviewDesign, control_pending, settled_pairs
from annotator.labelstudio.tasks import NO_NOTE, MediaRoute, build_task, is_rank_prediction
from annotator.review import current_votes
from annotator.store.engine import UnitOfWork
from annotator.store.models import LabelStudioProject, LabelStudioTask, Pair
from annotator.vocabulary import FinalReason, ImageStatus, ProjectPurpose, TaskKind, Verdict

DEFAULT_TITLE = "annotator review"
ADJUDICATION_SUFFIX = " – adjudication"
DEFAULT_BATCH_SIZE = 1000
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
    # issue 14: the review design
    overlap: int = 1  # the project's annotations per task
    overlap_changed_from: int | None = None  # its value before this push changed it
    overlap_tasks_updated: int = 0  # tasks pushed before, brought to the new overlap
    with_overlap: int = 0  # tasks pushed now (review and control) that collect more than one annotation
    control_pushed: int = 0  # control tasks pushed now (a settled pair served again)
    control_total: int = 0  # control tasks in the project, these included
    settled_pairs: int = 0  # pairs whose label is settled and that have a review task in the project
    blind_pushed: int = 0  # tasks pushed now without the pre-selected suggestion
    seed: int = 0
    overlays_rendered: int = 0  # overlay images drawn now (the others existed)
    media_checked: list[str] = field(default_factory=list)  # what the media check fetched, e.g. image, audio
    media_checked_through: str = ""  # "Label Studio" or the media base URL

    def to_json(self) -> dict[str, Any]:
        """The report as `--json` prints it."""
        return asdict(self)


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


def _pending_pairs(
    session: Session, project: LabelStudioProject, only: list[int] | None = None
) -> tuple[list[int], int]:
    """Ids of pairs with both media files not yet in `project`, and how many lack media."""
    pushed = select(LabelStudioTask.pair_id).where(
        LabelStudioTask.project_id == project.id, LabelStudioTask.kind == TaskKind.REVIEW
    )
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
    settled: int = 0  # pairs with a settled label and a review task in the project
    controls: list[int] = field(default_factory=list)  # settled pairs to push as control items now


def _prepare_project(
    session: Session,
    conn: Connection,
    title: str,
    purpose: ProjectPurpose,
    media: MediaRoute,
    only: list[int] | None = None,
    *,
    design: ReviewDesign | None = None,
) -> _PreparedProject:
    """Find or make the project, adopt orphan tasks, list the pairs to push (the `design`'s control items too)
    and attach the media storages they need."""
    project = ensure_project(session, conn, title, purpose, overlap=design.overlap if design else None)
    adopted = adopt_orphan_tasks(session, conn, project)
    session.flush()
    pending, without_media = _pending_pairs(session, project, only)
    settled = settled_pairs(session, project) if design is not None else []
    controls = control_pending(session, project, settled, design) if design is not None else []
    if not media.base_url and (pending or controls):
        folders = _top_folders(session, [*pending, *controls])
        (media.media_dir / OVERLAY_FOLDER).mkdir(parents=True, exist_ok=True)
        folders.add(OVERLAY_FOLDER)
        ensure_local_storage(conn, project.ls_project_id, media.media_dir, folders)
    already_pushed = session.scalar(select(func.count()).where(LabelStudioTask.project_id == project.id)) or 0
    return _PreparedProject(project, adopted, already_pushed, pending, without_media, len(settled), controls)


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
    blind: int = 0
    with_overlap: int = 0
    overlays: int = 0


@dataclass
class _Batch:
    """One import request's worth of tasks, built and ready (plain values only: the store's objects expire when
    the previous batch commits)."""

    pair_ids: list[int]
    tasks: list[dict[str, Any]]
    blind: set[int]
    overlaps: dict[int, int]  # pair id → the overlap its task should have


def _push_pending(
    work: UnitOfWork,
    conn: Connection,
    project: LabelStudioProject,
    pending_ids: list[int],
    *,
    batch_size: int,
    media: MediaRoute,
    gate: MediaGate,
    note_of: Callable[[Pair], str] | None,
    on_batch: Callable[[int], None] | None,
    ranking: Ranking | None = None,
    kind: TaskKind = TaskKind.REVIEW,
    design: ReviewDesign | None = None,
    project_overlap: int = 1,
) -> _Pushed:
    """Import `pending_ids` in batches, committing each batch's task ids with it (then calling `on_batch`).

    Without `note_of` the tasks carry the OSM prediction and the `ranking`'s (except the `design`'s blind share);
    with it, a note and no pre-selected answer. Either way they show the `ranking`'s suggestion as text. Tasks
    outside the design's overlap share are set to overlap 1 right after their import.

    While Label Studio imports one batch, the next is built (overlays drawn, tasks made) on this thread; the
    store is only ever used here, and a batch's rows are committed once its import has returned.
    """
    done = _Pushed()
    session = work.session

    def build(chunk: list[int]) -> _Batch:
        pairs = session.scalars(
            select(Pair)
            .where(Pair.id.in_(chunk))
            .options(selectinload(Pair.osm_evidence), selectinload(Pair.recording))
            .order_by(Pair.id)
        ).all()
        done.overlays += ensure_overlays(media.media_dir, pairs).rendered
        blind = {p.id for p in pairs if design is not None and note_of is None and design.blind(p.id)}
        tasks = []
        for p in pairs:
            task = build_task(
                p,
                media=media,
                note=note_of(p) if note_of else NO_NOTE,
                predict=note_of is None,
                rank=ranking.of(p.id) if ranking else None,
                preselect=p.id not in blind,
            )
            meta: dict[str, Any] = {META_KIND: kind.value} if kind is TaskKind.CONTROL else {}
            if p.id in blind:
                meta[META_BLIND] = True
            if meta:
                task["meta"] = meta
            tasks.append(task)
        if pairs:
            gate.check(pairs[0], tasks[0])
        overlaps = {p.id: design.overlap_of(p.id, project_overlap) if design else project_overlap for p in pairs}
        return _Batch([p.id for p in pairs], tasks, blind, overlaps)

    def record(batch: _Batch, ids: list[int]) -> None:
        by_pair = dict(zip(batch.pair_ids, ids, strict=True))
        set_task_overlaps(
            conn, {by_pair[p]: n for p, n in batch.overlaps.items() if n != project_overlap and p in by_pair}
        )
        session.add_all(
            LabelStudioTask(
                project_id=project.id,
                pair_id=pair_id,
                ls_task_id=task_id,
                kind=kind,
                preselected=note_of is None and pair_id not in batch.blind,
                overlap=batch.overlaps[pair_id],
            )
            for pair_id, task_id in by_pair.items()
        )
        work.commit_batch()
        predictions = [p for t in batch.tasks for p in t.get("predictions") or []]
        done.model_versions.update(p["model_version"] for p in predictions if not is_rank_prediction(p))
        done.with_rank += sum(1 for p in predictions if is_rank_prediction(p))
        done.blind += len(batch.blind)
        done.with_overlap += sum(1 for n in batch.overlaps.values() if n > 1)
        done.tasks += len(batch.pair_ids)
        done.batches += 1
        if on_batch is not None:
            on_batch(len(batch.pair_ids))

    chunks = [pending_ids[start : start + batch_size] for start in range(0, len(pending_ids), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as importer:
        in_flight: tuple[_Batch, Future[list[int]]] | None = None
        for chunk in chunks:
            try:
                batch = build(chunk)  # while the previous batch is being imported
            except BaseException:
                if in_flight is not None:  # keep what Label Studio made: record it before giving up
                    with contextlib.suppress(Exception):
                        record(in_flight[0], in_flight[1].result())
                raise
            if in_flight is not None:
                record(in_flight[0], in_flight[1].result())
            in_flight = (batch, importer.submit(_import_batch, conn, project, batch.tasks))
        if in_flight is not None:
            record(in_flight[0], in_flight[1].result())
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
    design: ReviewDesign | None = None,
    check_media_first: bool = True,
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
            media dir itself, as `annotator ls serve` starts it).
        batch_size: tasks per import request (hundreds; ~80 ms per request).
        order: which score Label Studio serves lowest first: ``rank`` (the most suspicious label first; the
            default when a rank run exists) or ``osm`` (the least confident OSM match first).
        design: overlap, control items and the blind share (default: as the project is, none, none).
        check_media_first: fetch the first task's media as a browser would before creating anything.
        on_batch: called with the number of tasks after each committed batch (progress).
        on_total: called once with the number of steps ahead: tasks to push, and two per task to update.

    Raises:
        NoRankRun: ``order="rank"`` without a rank run (nothing is pushed).
        MediaNotServed: the first task's media would not reach the browser (nothing is pushed).
        AnnotatorError: a design value out of range (nothing is pushed).
    """
    design = (design or ReviewDesign()).checked()
    session = work.session
    ranking = latest_ranking(session)
    chosen_order = resolve_order(order, ranking)
    report = PushReport(url=conn.shown_url, title=title, batch_size=batch_size, order=chosen_order, seed=design.seed)
    report.rank_run = ranking.run_id if ranking else None
    media = _media_route(location.media_dir, files_root, media_base_url)
    gate = MediaGate(conn, media, enabled=check_media_first)
    review = _prepare_project(session, conn, title, ProjectPurpose.REVIEW, media, design=design)
    controls = review.controls
    report.ls_project_id, report.already_pushed = review.project.ls_project_id, review.already_pushed
    report.adopted, report.without_media = review.adopted, review.without_media
    report.settled_pairs = review.settled
    conflicts = list(session.scalars(select(Pair.id).where(Pair.final_reason == FinalReason.CONFLICT)))
    setting = set_project_overlap(
        session, conn, review.project, design.overlap, lambda pair_id: design.overlap_of(pair_id, design.overlap or 1)
    )
    _report_overlap(report, setting)
    work.commit_batch()  # the project row, the adopted tasks and the overlaps set
    stale = find_stale_tasks(session, conn, review.project, ranking) if ranking else QueueRefresh()
    report.already_current, report.reviewed_untouched = stale.current, stale.reviewed
    if on_total is not None:
        on_total(len(review.pending) + len(controls) + 2 * len(stale.candidates))  # an update is two steps
    common: dict[str, Any] = dict(
        batch_size=batch_size,
        media=media,
        gate=gate,
        note_of=None,
        on_batch=on_batch,
        ranking=ranking,
        design=design,
        project_overlap=setting.overlap,
    )
    pushed = _push_pending(work, conn, review.project, review.pending, **common)
    control = _push_pending(work, conn, review.project, controls, kind=TaskKind.CONTROL, **common)
    report.pushed, report.batches = pushed.tasks + control.tasks, pushed.batches + control.batches
    versions = pushed.model_versions + control.model_versions
    report.model_versions = dict(versions)
    report.with_prediction, report.with_rank_prediction = versions.total(), pushed.with_rank + control.with_rank
    report.control_pushed, report.blind_pushed = control.tasks, pushed.blind + control.blind
    report.with_overlap = pushed.with_overlap + control.with_overlap
    report.overlays_rendered = pushed.overlays + control.overlays
    report.control_total = (
        session.scalar(
            select(func.count()).where(
                LabelStudioTask.project_id == review.project.id, LabelStudioTask.kind == TaskKind.CONTROL
            )
        )
        or 0
    )
    # The order first: the tasks updated next join the rank queue as their prediction is replaced.
    report.queue_model_version = order_queue(session, conn, review.project, chosen_order, ranking, versions)
    if ranking is not None and stale.candidates:
        report.updated_in_place = refresh_stale_tasks(session, conn, review.project, ranking, stale, on_batch=on_batch)
    if conflicts:
        report.adjudication_title = title + ADJUDICATION_SUFFIX
        adjudicated = _push_adjudication(
            work,
            conn,
            report.adjudication_title,
            conflicts,
            media=media,
            gate=gate,
            batch_size=batch_size,
            ranking=ranking,
        )
        report.adjudication_pushed = adjudicated.tasks
        report.overlays_rendered += adjudicated.overlays
    report.media_checked, report.media_checked_through = list(gate.result.fetched), gate.result.through
    return report


def _media_route(media_dir: Path, files_root: Path | None, base_url: str | None) -> MediaRoute:
    """How task media reach the browser.

    Raises:
        MediaNotServed: local-files serving with a files root that does not contain the media dir.
    """
    if not base_url and files_root is not None and not media_dir.resolve().is_relative_to(files_root.resolve()):
        raise MediaNotServed(
            f"no task was created: the media dir {media_dir.resolve()} is not inside the local-files root "
            f"{files_root.resolve()}; --ls-files-root (or LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT) must name the "
            "Label Studio server's local-files root, the media dir or a folder containing it"
        )
    return MediaRoute.checked(media_dir, files_root, base_url)


def _report_overlap(report: PushReport, setting: OverlapSetting) -> None:
    report.overlap, report.overlap_changed_from = setting.overlap, setting.changed_from
    report.overlap_tasks_updated = setting.tasks_updated


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
    gate: MediaGate,
    batch_size: int,
    ranking: Ranking | None,
) -> _Pushed:
    """Push the pairs in conflict not yet in the adjudication project."""
    adjudication = _prepare_project(work.session, conn, title, ProjectPurpose.ADJUDICATION, media, only=conflicts)
    notes = adjudication_notes(work.session, adjudication.pending)
    work.commit_batch()  # the project row and the adopted tasks
    return _push_pending(
        work,
        conn,
        adjudication.project,
        adjudication.pending,
        batch_size=batch_size,
        media=media,
        gate=gate,
        note_of=lambda p: notes.get(p.id, NO_NOTE),
        on_batch=None,
        ranking=ranking,
    )
