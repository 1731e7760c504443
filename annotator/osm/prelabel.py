"""Pre-label pairs from OSM: cluster the pairs lacking evidence, get features per cluster, decide, store.

A long batch job: :func:`prelabel_pairs` works in the caller's :class:`~annotator.store.UnitOfWork` and commits
one batch per cluster, so an interrupted or refused run keeps what it finished and a rerun only does what is
missing (SPEC §6).

Two runs on one store at once (two curators, or a cron job beside a person) both finish: a cluster whose commit
conflicts with the other run's rows (the unique ``osm_evidence.pair_id`` or ``osm_responses.query_sha256``) is
rolled back and done again for the pairs still lacking evidence — the other run's response is then found in the
cache — at most :data:`CONFLICT_RETRIES` times.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from annotator.errors import AnnotatorError, OverpassRefused, redact_url
from annotator.labelstudio.overlays import ensure_overlays
from annotator.osm.answer import BadAnswer, parse_answer
from annotator.osm.cluster import DEFAULT_CELL_KM, Cluster, PointTask, cluster_points
from annotator.osm.decide import Bounds, Decision, DecisionOptions, FeatureIndex, decide
from annotator.osm.extract import Extract, load_extract
from annotator.osm.features import features_from_elements, metres_per_degree
from annotator.osm.overpass import (
    OverpassClient,
    OverpassOptions,
    build_query,
    cached_response,
    store_response,
)
from annotator.store.engine import UnitOfWork
from annotator.store.models import OsmEvidence, Pair
from dataset.imagery.geo import footprint_bbox

#: Side of the image footprint assumed when a pair has none and the imagery maths cannot give one (metres).
FALLBACK_FOOTPRINT_M = 256.0
#: How many times a cluster is done again after its commit conflicted with another run writing the same rows.
CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class ClusterFeatures:
    """The features one cluster is decided on, and what its evidence rows name as their source."""

    index: FeatureIndex
    source: str  # what evidence rows name as their source
    source_date: str | None
    queried_at: datetime


class FeatureSource(Protocol):
    """Where features come from: an Overpass endpoint or an extract."""

    name: str

    @property
    def requests_made(self) -> int:
        """Requests sent to a server so far (0 for a local extract)."""
        ...

    @property
    def cache_hits(self) -> int:
        """Clusters answered from the store's response cache so far."""
        ...

    def features_for(self, session: Session, cluster: Cluster) -> ClusterFeatures:
        """The features around `cluster`; raises :class:`OverpassRefused` before writing anything."""
        ...


class ExtractSource:
    """Features from an .osm / .osm.pbf file, read once."""

    requests_made = 0
    cache_hits = 0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._extract: Extract | None = None
        self._index: FeatureIndex | None = None

    def features_for(self, session: Session, cluster: Cluster) -> ClusterFeatures:
        """The whole extract's features (the cluster does not narrow a local file)."""
        if self._extract is None:
            self._extract = load_extract(self.path)
            self._index = FeatureIndex(self._extract.features)
        assert self._index is not None
        return ClusterFeatures(self._index, self.name, self._extract.source_date, datetime.now(UTC))


class OverpassSource:
    """Features from an Overpass endpoint, one (cached) query per cluster."""

    def __init__(self, client: OverpassClient) -> None:
        self.client = client
        self.name = redact_url(client.options.url)  # stored as the evidence's source: never a password
        self.cache_hits = 0

    @property
    def requests_made(self) -> int:
        """Requests the client sent so far (retries included)."""
        return self.client.requests_made

    def features_for(self, session: Session, cluster: Cluster) -> ClusterFeatures:
        """The cluster's features from the response cache, else from one query (whose response is cached)."""
        query = build_query(cluster, query_timeout_s=self.client.options.query_timeout_s)
        cached = cached_response(session, query)
        if cached is not None:
            try:
                answer = parse_answer(cached.body)
            except BadAnswer:  # cached by an older version that did not check answers: ask again
                session.delete(cached)
                session.flush()
                cached = None
        if cached is not None:
            self.cache_hits += 1
            endpoint, fetched_at = redact_url(cached.endpoint), cached.fetched_at
        else:
            body, answer = self.client.fetch(query)
            endpoint, fetched_at = self.name, datetime.now(UTC)
            store_response(session, endpoint, query, body)
        features = features_from_elements(answer.elements)
        return ClusterFeatures(FeatureIndex(features), endpoint, answer.osm_base, fetched_at)


def feature_source(osm_file: Path | None, overpass: OverpassOptions) -> FeatureSource:
    """The extract at `osm_file` when one is given, else the Overpass endpoint `overpass` describes."""
    if osm_file is not None:
        return ExtractSource(osm_file)
    return OverpassSource(OverpassClient(overpass))


@dataclass
class PrelabelReport:
    """What a pre-labelling run did."""

    source: str
    pairs_todo: int = 0
    labelled: int = 0  # evidence stored with a class
    unmatched: int = 0  # evidence stored, OSM suggests no class
    left_unlabelled: int = 0  # no evidence stored (the source refused); a rerun retries them
    done_elsewhere: int = 0  # given evidence meanwhile by another run on the same store
    clusters: int = 0
    requests: int = 0
    cache_hits: int = 0
    per_class: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    overlays_rendered: int = 0  # overlay images drawn for the review tasks (pairs with an image, media dir given)
    overlays_failed: int = 0  # the image could not be read: `ls push` tries again
    overlay_seconds: float = 0.0

    @property
    def points_per_request(self) -> float:
        return (self.labelled + self.unmatched) / self.requests if self.requests else 0.0

    def count(self, decision: Decision) -> None:
        """Count one stored decision."""
        if decision.label is None:
            self.unmatched += 1
        else:
            self.labelled += 1
            self.per_class[decision.label.value] += 1


def footprint_of(pair: Pair) -> Bounds:
    """The stored image footprint, else the footprint the default imagery settings would give."""
    if pair.footprint is not None:
        return pair.footprint
    try:
        west, south, east, north = footprint_bbox(pair.lat, pair.lon)
        if west <= east:
            return (west, south, east, north)
    except AnnotatorError:  # beyond Web-Mercator latitudes: no image maths there, fall back to a square
        pass
    kx, ky = metres_per_degree(pair.lat)
    half = FALLBACK_FOOTPRINT_M / 2
    return (pair.lon - half / kx, pair.lat - half / ky, pair.lon + half / kx, pair.lat + half / ky)


def _pending_points(session: Session, *, force: bool) -> list[PointTask]:
    statement = select(Pair).order_by(Pair.id)
    if not force:
        statement = statement.outerjoin(OsmEvidence).where(OsmEvidence.id.is_(None))
    return [PointTask(p.id, p.lat, p.lon, footprint_of(p)) for p in session.scalars(statement)]


def _still_pending(session: Session, points: tuple[PointTask, ...]) -> tuple[PointTask, ...]:
    """The points of `points` that still have no evidence (another run may have given them some)."""
    ids = [p.pair_id for p in points]
    done = set(session.scalars(select(OsmEvidence.pair_id).where(OsmEvidence.pair_id.in_(ids))))
    return tuple(p for p in points if p.pair_id not in done)


def _store_points(
    session: Session,
    points: tuple[PointTask, ...],
    found: ClusterFeatures,
    options: DecisionOptions,
    *,
    replace: bool,
) -> list[Decision]:
    """Decide every point of `points` and add its evidence (replacing what it had, with `replace`)."""
    if replace:
        ids = [p.pair_id for p in points]
        session.execute(delete(OsmEvidence).where(OsmEvidence.pair_id.in_(ids)))
    decisions = []
    for point in points:
        decision = decide(point.lat, point.lon, point.footprint, found.index, options)
        session.add(
            OsmEvidence(
                pair_id=point.pair_id,
                label=decision.label.value if decision.label else None,
                confidence=decision.confidence,
                coverage=decision.coverage,
                elements=decision.elements,
                last_edit_at=decision.last_edit_at,
                source=found.source,
                source_date=found.source_date,
                queried_at=found.queried_at,
            )
        )
        decisions.append(decision)
    return decisions


def _render_overlays(session: Session, media_dir: Path, cluster: Cluster, report: PrelabelReport) -> None:
    """Draw the overlays of the cluster's pairs that have an image (a missing or unreadable image is counted and
    left for `ls push`, which renders what is missing)."""
    ids = [p.pair_id for p in cluster.points]
    pairs = session.scalars(
        select(Pair)
        .where(Pair.id.in_(ids), Pair.image_path.is_not(None))
        .options(selectinload(Pair.osm_evidence))
        .order_by(Pair.id)
    ).all()
    done = ensure_overlays(media_dir, pairs)
    report.overlays_rendered += done.rendered
    report.overlays_failed += done.failed
    report.overlay_seconds += done.seconds


class _KeptConflicting(Exception):
    """The cluster's commit conflicted with another run more than :data:`CONFLICT_RETRIES` times."""


def _prelabel_cluster(
    work: UnitOfWork, source: FeatureSource, cluster: Cluster, options: DecisionOptions, *, force: bool
) -> tuple[list[Decision], int]:
    """Decide and commit one cluster; returns its decisions and how many of its pairs another run did meanwhile.

    On a unique-constraint conflict at the commit (another run stored the same response or evidence first) the
    batch is rolled back and done again for the pairs still lacking evidence (all of them, with `force`).
    """
    for _ in range(CONFLICT_RETRIES + 1):
        points = cluster.points if force else _still_pending(work.session, cluster.points)
        if not points:
            return [], len(cluster.points)
        found = source.features_for(work.session, cluster)  # the whole cluster: the query (cache key) stays one
        try:
            decisions = _store_points(work.session, points, found, options, replace=force)
            work.commit_batch()
        except IntegrityError:
            work.session.rollback()
            continue
        return decisions, len(cluster.points) - len(points)
    raise _KeptConflicting


def prelabel_pairs(
    work: UnitOfWork,
    source: FeatureSource,
    *,
    options: DecisionOptions | None = None,
    cell_km: float = DEFAULT_CELL_KM,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    media_dir: Path | None = None,
) -> PrelabelReport:
    """Store OSM evidence for every pair lacking it (all pairs with `force`), one committed batch per cluster.

    When the source refuses (Overpass gave up after its retries), the run stops, keeps what it committed,
    and reports the message and how many pairs are left for the next run in ``report.error``.

    Args:
        work: the caller's unit of work; ``work.commit_batch()`` is called after each cluster.
        source: where the features come from (:func:`feature_source`).
        options: the decision rule's settings.
        cell_km: side of the clustering cell; the pairs of one cell share one query.
        force: decide again for pairs that already have evidence (their old evidence is replaced).
        progress: called with the number of pairs after each committed cluster.
        media_dir: the store's media directory; when given, the overlay image of every decided pair that has an
            aerial image is rendered right after its cluster is committed (:mod:`annotator.labelstudio.overlays`).

    Pairs another run on the same store gives evidence to meanwhile are skipped (``report.done_elsewhere``).
    """
    options = options or DecisionOptions()
    report = PrelabelReport(source=source.name)
    points = _pending_points(work.session, force=force)
    report.pairs_todo = len(points)
    clusters = cluster_points(points, cell_km=cell_km, reach_m=options.reach_m)
    requests_before = source.requests_made
    for number, cluster in enumerate(clusters):
        try:
            decisions, elsewhere = _prelabel_cluster(work, source, cluster, options, force=force)
        except (OverpassRefused, _KeptConflicting) as exc:  # nothing of this cluster was committed
            work.session.rollback()
            left = sum(len(c.points) for c in clusters[number:])
            report.left_unlabelled = left
            why = str(exc) if isinstance(exc, OverpassRefused) else "another run kept writing the same pairs"
            report.error = f"{why}. {left} pair(s) were left without OSM evidence; rerun `annotator prelabel` later."
            break
        for decision in decisions:
            report.count(decision)
        if media_dir is not None and decisions:
            _render_overlays(work.session, media_dir, cluster, report)
        report.done_elsewhere += elsewhere
        report.clusters += 1
        if progress is not None:
            progress(len(cluster.points))
    report.requests = source.requests_made - requests_before
    report.cache_hits = source.cache_hits
    return report
