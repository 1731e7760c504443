"""The review queue's order: the latest rank run's suggestion on every unreviewed task, and which score the
project serves first (issue 13; notes/labelstudio.md, "Ordering the review queue").

Label Studio's uncertainty sampling serves the tasks whose prediction has the project's ``model_version`` lowest
score first. Every task carries the OSM prediction (score = OSM confidence) and, once `annotator rank` has run,
the rank prediction (``rank:<run>``, score = 1 − suspicion); pointing the project at one or the other is the order:

* ``rank`` — the most suspicious label first (the default when a rank run exists);
* ``osm`` — the least confident OSM match first (the order before rank runs existed).

Tasks pushed before the latest rank run and not reviewed yet (no annotation, no skip) are updated in place: their
rank prediction replaced and their model text rewritten; a reviewed task is never touched. A task pushed blind
(``--blind-fraction``, issue 14) gets the run's prediction blind too: its score, pre-selecting nothing. Each
task's data names the run it shows (``rank_run``), so a second push with the same run changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from annotator.errors import AnnotatorError, LabelStudioUnavailable
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.client import Connection, iter_task_pages
from annotator.labelstudio.tasks import (
    OSM_LABEL_KEY,
    RANK_RUN_KEY,
    RANK_VERSION_PREFIX,
    RankSuggestion,
    is_rank_prediction,
    model_version_of,
    osm_prediction,
    rank_data,
    rank_model_version,
)
from annotator.store.models import LabelStudioProject, LabelStudioTask, OsmEvidence, Pair

#: Label Studio's sampling that serves the lowest prediction score of the project's model version first.
UNCERTAINTY_SAMPLING = "Uncertainty sampling"
#: Tasks per batch of the prediction pass of an update: a fresh look at the batch, one request deleting its
#: predictions, one importing the new ones (~1–3 s a batch).
PREDICTION_BATCH = 500
#: Tasks per batch of the text pass: a fresh look, then one data PATCH per task (~80–250 ms each, the slow part) —
#: small, so a task reviewed while the pass runs is caught by the fresh look.
TEXT_BATCH = 100
#: Data PATCH requests in flight at once (Label Studio answers ~2× faster with a few; more only queue up).
PATCH_WORKERS = 4
#: What the first listing asks Label Studio for (it then skips computing every other field).
_LISTED = "id,data,total_annotations,cancelled_annotations"
_LISTED_WITH_PREDICTIONS = _LISTED + ",predictions"


class ReviewOrder(StrEnum):
    """Which score of the tasks Label Studio serves lowest first."""

    RANK = "rank"  # the latest rank run's: the most suspicious label first
    OSM = "osm"  # the OSM prediction's: the least confident OSM match first

    @property
    def serves_first(self) -> str:
        """What an annotator meets first in this order."""
        return "the most suspicious label first" if self is ReviewOrder.RANK else "the least confident OSM match first"


class NoRankRun(AnnotatorError):
    """`--order rank` was asked for, but the store holds no rank run."""


@dataclass(frozen=True)
class Ranking:
    """The latest rank run's suggestion per pair."""

    run_id: int
    suggestions: dict[int, RankSuggestion]

    @property
    def model_version(self) -> str:
        return rank_model_version(self.run_id)

    def of(self, pair_id: int) -> RankSuggestion:
        """The run's suggestion for a pair (one with no label when the run did not score it)."""
        return self.suggestions.get(pair_id) or RankSuggestion(run_id=self.run_id, label=None)


def latest_ranking(session: Session) -> Ranking | None:
    """The latest rank run's suggestions, or None before any rank run."""
    from annotator.rank import latest_rank_scores

    found = latest_rank_scores(session)
    if found is None:
        return None
    run, scores = found
    return Ranking(
        run_id=run.id,
        suggestions={
            pair_id: RankSuggestion(
                run_id=run.id, label=s.suggested_label, p=s.suggested_p, suspicion=s.suspicion, rank=s.rank
            )
            for pair_id, s in scores.items()
        },
    )


def resolve_order(order: ReviewOrder | str | None, ranking: Ranking | None) -> ReviewOrder:
    """The order to use: as asked, else rank when a rank run exists, else osm.

    Raises:
        NoRankRun: rank asked for without a rank run.
        ValueError: an order that is neither rank nor osm (the CLI offers only those).
    """
    if order is None:
        return ReviewOrder.RANK if ranking is not None else ReviewOrder.OSM
    chosen = ReviewOrder(order)
    if chosen is ReviewOrder.RANK and ranking is None:
        raise NoRankRun("--order rank needs a rank run: run `annotator rank` first, or push with --order osm")
    return chosen


def order_queue(
    session: Session,
    conn: Connection,
    project: LabelStudioProject,
    order: ReviewOrder,
    ranking: Ranking | None,
    osm_versions: Counter[str],
) -> str | None:
    """Point the project's uncertainty sampling at the rank run's or the OSM predictions; returns the version.

    Rank: the run's model version, and uncertainty sampling (set again should someone have changed it). OSM: as
    before rank runs existed — the most common OSM model version of the tasks pushed now (`osm_versions`); with
    none pushed now, the project is left as it is unless it points at a rank run, when it goes back to its tasks'
    OSM version. A setting that is already right is not sent again.
    """
    ls_project_id = project.ls_project_id
    with conn.errors(project_id=ls_project_id):
        remote = conn.client.projects.get(id=ls_project_id)
    current: str | None = getattr(remote, "model_version", None) or None
    sampling: str | None = None
    if order is ReviewOrder.RANK and ranking is not None:
        wanted: str | None = ranking.model_version
        sampling = UNCERTAINTY_SAMPLING
    else:
        wanted = osm_versions.most_common(1)[0][0] if osm_versions else None
        if wanted is None and current is not None and current.startswith(RANK_VERSION_PREFIX):
            # No OSM prediction at all: an empty version makes the queue fall back to random order, as a project
            # without predictions did before rank runs.
            wanted = _osm_version_of_project(session, project) or ""
    if wanted is None:
        return current
    changes: dict[str, Any] = {}
    if (current or "") != wanted:
        changes["model_version"] = wanted
    if sampling is not None and getattr(remote, "sampling", None) != sampling:
        changes["sampling"] = sampling
    if changes:
        with conn.errors(project_id=ls_project_id):
            conn.client.projects.update(id=ls_project_id, **changes)
    return wanted or None


def _osm_version_of_project(session: Session, project: LabelStudioProject) -> str | None:
    """The most common OSM model version among the pairs the project holds tasks of."""
    query = (
        select(OsmEvidence)
        .join(LabelStudioTask, LabelStudioTask.pair_id == OsmEvidence.pair_id)
        .where(LabelStudioTask.project_id == project.id, OsmEvidence.label.is_not(None))
    )
    versions = Counter(model_version_of(ev) for ev in session.scalars(query))
    return versions.most_common(1)[0][0] if versions else None


@dataclass
class QueueRefresh:
    """What updating pushed tasks in place found and did."""

    candidates: list[tuple[int, int]] = field(default_factory=list)  # (task id, pair id) showing an older run
    current: int = 0  # unreviewed tasks already showing the latest run
    reviewed: int = 0  # tasks with an annotation or a skip: never touched
    blind: set[int] = field(default_factory=set)  # ids of the project's tasks pushed without pre-selection


def _unreviewed(task: dict[str, Any]) -> bool:
    """No annotation and no skip; a listing without the counts is taken as reviewed (never touch what is unknown)."""
    counts = (task.get("total_annotations"), task.get("cancelled_annotations"))
    return all(isinstance(n, int) and n == 0 for n in counts)


def find_stale_tasks(session: Session, conn: Connection, project: LabelStudioProject, ranking: Ranking) -> QueueRefresh:
    """The project's unreviewed tasks (made by this store) that do not show `ranking`'s run yet."""
    of_project = LabelStudioTask.project_id == project.id
    rows = session.execute(
        select(LabelStudioTask.ls_task_id, LabelStudioTask.pair_id, LabelStudioTask.preselected).where(of_project)
    )
    pair_of_task: dict[int, int] = {}
    blind: set[int] = set()
    for task_id, of_pair, preselected in rows:
        pair_of_task[task_id] = of_pair
        if not preselected:
            blind.add(task_id)
    found = QueueRefresh(blind=blind)
    for page in iter_task_pages(conn, project.ls_project_id, page_size=1000, fields="task_only", include=_LISTED):
        for task in page:
            pair_id = pair_of_task.get(task["id"])
            if pair_id is None:
                continue  # made in Label Studio by hand, or by another store
            if not _unreviewed(task):
                found.reviewed += 1
            elif (task.get("data") or {}).get(RANK_RUN_KEY) == ranking.run_id:
                found.current += 1
            else:
                found.candidates.append((int(task["id"]), pair_id))
    return found


def refresh_stale_tasks(
    session: Session,
    conn: Connection,
    project: LabelStudioProject,
    ranking: Ranking,
    found: QueueRefresh,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Give the tasks `found` the latest run's prediction, then its text; returns how many were updated.

    Two passes over batches, each batch starting with a fresh look at its tasks, so a task reviewed since the
    first listing is left alone:

    1. predictions — one request deleting the batch's predictions, one importing the kept ones (the OSM
       prediction, as it was) and the new rank prediction: the queue follows the run within seconds;
    2. texts — one data PATCH per task (the slow part), which also writes the run's id, so a push killed
       before it ends redoes those tasks next time.

    `on_batch` is called after each batch of each pass with its size (2 × the candidates in all).
    """
    ls_project_id = project.ls_project_id
    predicted: list[int] = []
    for chunk in _chunks(found.candidates, PREDICTION_BATCH):
        tasks = [t for t in _fresh_tasks(conn, ls_project_id, list(chunk), with_predictions=True) if _stale(t, ranking)]
        if tasks:
            pairs = _pairs(session, [chunk[int(t["id"])] for t in tasks])
            _replace_predictions(conn, ls_project_id, tasks, chunk, pairs, ranking, found.blind)
            predicted.extend(int(t["id"]) for t in tasks)
        if on_batch is not None:
            on_batch(len(chunk))
    pair_of_task = dict(found.candidates)
    updated = 0
    for chunk in _chunks([(task_id, pair_of_task[task_id]) for task_id in predicted], TEXT_BATCH):
        tasks = [
            t for t in _fresh_tasks(conn, ls_project_id, list(chunk), with_predictions=False) if _stale(t, ranking)
        ]
        _patch_data(conn, tasks, chunk, ranking)
        updated += len(tasks)
        if on_batch is not None:
            on_batch(len(chunk))
    if on_batch is not None:
        on_batch(len(found.candidates) - len(predicted))  # the texts not needed (tasks reviewed meanwhile)
    return updated


def _chunks(pairs: list[tuple[int, int]], size: int) -> Iterator[dict[int, int]]:
    for start in range(0, len(pairs), size):
        yield dict(pairs[start : start + size])


def _stale(task: dict[str, Any], ranking: Ranking) -> bool:
    return _unreviewed(task) and (task.get("data") or {}).get(RANK_RUN_KEY) != ranking.run_id


def _fresh_tasks(
    conn: Connection, ls_project_id: int, task_ids: list[int], *, with_predictions: bool
) -> Iterator[dict[str, Any]]:
    """The tasks `task_ids` as they are now (data, annotation counts and, if asked for, predictions)."""
    query = json.dumps({"selectedItems": {"all": False, "included": task_ids}})
    pages = iter_task_pages(
        conn,
        ls_project_id,
        page_size=len(task_ids),
        query=query,
        fields="all" if with_predictions else "task_only",
        include=_LISTED_WITH_PREDICTIONS if with_predictions else _LISTED,
    )
    wanted = set(task_ids)
    for page in pages:
        yield from (t for t in page if t["id"] in wanted)


def _pairs(session: Session, pair_ids: list[int]) -> dict[int, Pair]:
    query = select(Pair).where(Pair.id.in_(pair_ids)).options(selectinload(Pair.osm_evidence))
    return {p.id: p for p in session.scalars(query)}


def _kept_predictions(task: dict[str, Any], pair: Pair | None, *, blind: bool = False) -> list[dict[str, Any]]:
    """A task's predictions other than rank ones, as they are (oldest first, so the OSM one stays first).

    A task pushed with an OSM prediction that has none any more lost it to a push killed between deleting and
    re-importing a batch's predictions: it is made again from the store's evidence (blind for a `blind` task).
    """
    listed = [p for p in task.get("predictions") or [] if isinstance(p, dict) and not is_rank_prediction(p)]
    kept = [
        {"model_version": p.get("model_version"), "score": p.get("score"), "result": p.get("result") or []}
        for p in sorted(listed, key=lambda p: int(p.get("id") or 0))
    ]
    osm_label = (task.get("data") or {}).get(OSM_LABEL_KEY)
    if not kept and osm_label and pair is not None and pair.osm_evidence and pair.osm_evidence.label == osm_label:
        rebuilt = osm_prediction(pair.osm_evidence)
        if rebuilt is not None and blind:
            rebuilt = lsconfig.blind_prediction(model_version=rebuilt["model_version"], score=rebuilt["score"])
        kept = [rebuilt] if rebuilt else []
    return kept


def _replace_predictions(
    conn: Connection,
    ls_project_id: int,
    tasks: list[dict[str, Any]],
    pair_of_task: dict[int, int],
    pairs: dict[int, Pair],
    ranking: Ranking,
    found_blind: set[int],
) -> None:
    """Delete the tasks' predictions and import the kept ones followed by the latest rank prediction (blind, for
    the tasks in `found_blind`)."""
    requests: list[dict[str, Any]] = []
    for task in tasks:
        pair_id = pair_of_task[int(task["id"])]
        blind = int(task["id"]) in found_blind
        rank = ranking.of(pair_id).prediction()
        if rank is not None and blind:  # a blind task shows no suggestion: the run's score keeps its queue place
            rank = lsconfig.blind_prediction(model_version=rank["model_version"], score=rank["score"])
        for prediction in [*_kept_predictions(task, pairs.get(pair_id), blind=blind), *([rank] if rank else [])]:
            requests.append({**prediction, "task": int(task["id"])})
    ids = [int(t["id"]) for t in tasks]
    created = len(requests)
    with conn.errors(project_id=ls_project_id):
        conn.client.actions.create(
            id="delete_tasks_predictions", project=ls_project_id, selected_items={"all": False, "included": ids}
        )
        if requests:
            # The SDK types `request` as its request models; it sends plain prediction dicts as they are.
            answer = conn.client.projects.import_predictions(id=ls_project_id, request=requests)  # type: ignore[arg-type]
            created = getattr(answer, "created", created)
    if created != len(requests):
        raise LabelStudioUnavailable(
            f"Label Studio created {created} of {len(requests)} predictions; run `annotator ls push` again"
        )


def _patch_data(conn: Connection, tasks: list[dict[str, Any]], pair_of_task: dict[int, int], ranking: Ranking) -> None:
    """Rewrite each task's model text and run id (the rest of its data as it is), a few requests at a time."""

    def patch(task: dict[str, Any]) -> None:
        data = {**(task.get("data") or {}), **rank_data(ranking.of(pair_of_task[int(task["id"])]))}
        with conn.errors():
            conn.client.tasks.update(id=str(task["id"]), data=data)

    with ThreadPoolExecutor(max_workers=PATCH_WORKERS) as pool:
        list(pool.map(patch, tasks))
