"""Pre-label pairs from OSM: cluster the pairs lacking evidence, get features per cluster, decide, store.

A long batch job: :func:`prelabel_pairs` takes an engine and commits once per cluster, so an interrupted or
refused run keeps what it finished and a rerun only does what is missing (SPEC §6).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from annotator.errors import AnnotatorError, OverpassRefused
from annotator.osm.cluster import DEFAULT_CELL_KM, Cluster, PointTask, cluster_points
from annotator.osm.decide import Bounds, DecisionOptions, FeatureIndex, decide
from annotator.osm.extract import Extract, load_extract
from annotator.osm.features import features_from_elements, metres_per_degree
from annotator.osm.overpass import OverpassClient, build_query, cached_response, parse_response, store_response
from annotator.store.engine import session_scope
from annotator.store.models import OsmEvidence, Pair

#: Side of the image footprint assumed when a pair has none and the imagery maths cannot give one (metres).
FALLBACK_FOOTPRINT_M = 256.0


@dataclass(frozen=True)
class ClusterFeatures:
    index: FeatureIndex
    source: str  # what evidence rows name as their source
    source_date: str | None
    queried_at: datetime


class FeatureSource(Protocol):
    """Where features come from: an Overpass endpoint or an extract."""

    name: str

    def features_for(self, session: Session, cluster: Cluster) -> ClusterFeatures: ...


class ExtractSource:
    """Features from an .osm / .osm.pbf file, read once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._extract: Extract | None = None
        self._index: FeatureIndex | None = None

    def features_for(self, session: Session, cluster: Cluster) -> ClusterFeatures:
        if self._extract is None:
            self._extract = load_extract(self.path)
            self._index = FeatureIndex(self._extract.features)
        assert self._index is not None
        return ClusterFeatures(self._index, self.name, self._extract.source_date, datetime.now(UTC))


class OverpassSource:
    """Features from an Overpass endpoint, one (cached) query per cluster."""

    def __init__(self, client: OverpassClient) -> None:
        self.client = client
        self.name = client.options.url
        self.cache_hits = 0

    def features_for(self, session: Session, cluster: Cluster) -> ClusterFeatures:
        query = build_query(cluster, query_timeout_s=self.client.options.query_timeout_s)
        cached = cached_response(session, query)
        if cached is not None:
            self.cache_hits += 1
            body, endpoint, fetched_at = cached.body, cached.endpoint, cached.fetched_at
        else:
            body = self.client.fetch(query)
            endpoint, fetched_at = self.name, datetime.now(UTC)
            store_response(session, endpoint, query, body)
        elements, osm_base = parse_response(body)
        return ClusterFeatures(FeatureIndex(features_from_elements(elements)), endpoint, osm_base, fetched_at)


@dataclass
class PrelabelReport:
    """What a pre-labelling run did."""

    source: str
    pairs_todo: int = 0
    labelled: int = 0  # evidence stored with a class
    unmatched: int = 0  # evidence stored, OSM suggests no class
    left_unlabelled: int = 0  # no evidence stored (the source refused); a rerun retries them
    clusters: int = 0
    requests: int = 0
    cache_hits: int = 0
    per_class: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    @property
    def points_per_request(self) -> float:
        return (self.labelled + self.unmatched) / self.requests if self.requests else 0.0


def footprint_of(pair: Pair) -> Bounds:
    """The stored image footprint, else the footprint the default imagery settings would give."""
    if pair.footprint is not None:
        return pair.footprint
    try:
        from dataset.imagery.geo import footprint_bbox

        west, south, east, north = footprint_bbox(pair.lat, pair.lon)
        if west <= east:
            return (west, south, east, north)
    except AnnotatorError:  # beyond Web-Mercator latitudes: no image maths there, fall back to a square
        pass
    kx, ky = metres_per_degree(pair.lat)
    half = FALLBACK_FOOTPRINT_M / 2
    return (pair.lon - half / kx, pair.lat - half / ky, pair.lon + half / kx, pair.lat + half / ky)


def _pending_points(engine: Engine, *, force: bool) -> list[PointTask]:
    with session_scope(engine) as session:
        statement = select(Pair).order_by(Pair.id)
        if not force:
            statement = statement.outerjoin(OsmEvidence).where(OsmEvidence.id.is_(None))
        return [PointTask(p.id, p.lat, p.lon, footprint_of(p)) for p in session.scalars(statement)]


def prelabel_pairs(
    engine: Engine,
    source: FeatureSource,
    *,
    options: DecisionOptions | None = None,
    cell_km: float = DEFAULT_CELL_KM,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PrelabelReport:
    """Store OSM evidence for every pair lacking it (all pairs with `force`), one commit per cluster.

    When the source refuses (Overpass gave up after its retries), the run stops, keeps what it committed,
    and reports the message and how many pairs are left for the next run in ``report.error``.
    """
    options = options or DecisionOptions()
    report = PrelabelReport(source=source.name)
    points = _pending_points(engine, force=force)
    report.pairs_todo = len(points)
    clusters = cluster_points(points, cell_km=cell_km, reach_m=options.reach_m)
    client = getattr(source, "client", None)
    requests_before = client.requests_made if client is not None else 0
    for number, cluster in enumerate(clusters):
        try:
            with session_scope(engine) as session:
                found = source.features_for(session, cluster)
                if force:
                    ids = [p.pair_id for p in cluster.points]
                    session.execute(delete(OsmEvidence).where(OsmEvidence.pair_id.in_(ids)))
                for point in cluster.points:
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
                    if decision.label is None:
                        report.unmatched += 1
                    else:
                        report.labelled += 1
                        report.per_class[decision.label.value] += 1
        except OverpassRefused as exc:
            left = sum(len(c.points) for c in clusters[number:])
            report.left_unlabelled = left
            report.error = f"{exc}. {left} pair(s) were left without OSM evidence; rerun `annotator prelabel` later."
            break
        report.clusters += 1
        if progress is not None:
            progress(len(cluster.points))
    if client is not None:
        report.requests = client.requests_made - requests_before
    report.cache_hits = getattr(source, "cache_hits", 0)
    return report
