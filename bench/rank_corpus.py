"""Seeded corpora with a known share of stale OSM labels, written as a real store (for `annotator rank`).

Two shapes:

* ``advance_spec()`` — shaped like ADVANCE: the 13 classes in the paper's proportions
  (:data:`annotator.vocabulary.ADVANCE_COUNTS`, ~1,000 pairs by default). Image and sound are drawn per *true*
  class (:mod:`bench.rank_media`: colour and texture from above; band energies and sound events) with realistic
  overlap: similar classes look and sound alike (forest~orchard, grassland~farmland~sparse shrub land,
  lake~harbour~beach, airport~train station), a third of the pairs mix in part of a neighbouring class, and a few
  have haze or an uninformative clip.
* ``calibration_spec()`` — the issue's calibration corpus: 5 land-cover classes × 40 pairs, one flat colour and
  one tone per true class, with noise.

A known share of the OSM labels is stale (exactly ``round(stale_share · N)`` pairs, drawn at random): OSM still
claims the class the ground had before a plausible land-use change (farmland → residential, forest → farmland …;
:data:`PREVIOUS`). The OSM evidence (label, confidence, coverage, the deciding elements with their timestamps,
last edit) is planted as ``annotator prelabel`` stores it: confidence from the label's footprint coverage
(``0.5 + 0.5·coverage``, as :func:`annotator.osm.decide.decide`), so it says how well the old polygon matches, not
whether the ground changed; stale labels tend to have older last edits, but not decisively.

Same spec (seed included) → the same media bytes, the same rows and the same truth file. Usage:
    from bench.rank_corpus import advance_spec, write_corpus
    planted = write_corpus(resolve_store("corpus/annotator.db"), advance_spec(pairs=1000, seed=0))
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from annotator.config import StoreLocation
from annotator.osm.tags import CANONICAL_TAGS
from annotator.store import open_store, session_scope, upgrade_to_head
from annotator.store.media import clip_relpath, image_relpath
from annotator.store.models import OsmEvidence, Pair, Recording
from annotator.vocabulary import (
    ADVANCE_COUNTS,
    ImageStatus,
    PairOrigin,
    RecordingSource,
    RecordingStatus,
    SceneClass,
)
from bench.rank_media import CLIP_RATE, NEIGHBOURS, render_image, render_sound, write_clip

S = SceneClass
#: The class the ground had before a plausible change, per class it has now (OSM still claims one of these).
PREVIOUS: dict[SceneClass, tuple[SceneClass, ...]] = {
    S.AIRPORT: (S.FARMLAND, S.GRASSLAND),
    S.BEACH: (S.HARBOUR, S.GRASSLAND, S.LAKE),
    S.BRIDGE: (S.LAKE, S.HARBOUR),
    S.FARMLAND: (S.FOREST, S.GRASSLAND, S.ORCHARD),
    S.FOREST: (S.FARMLAND, S.GRASSLAND, S.SPARSE_SHRUB_LAND),
    S.GRASSLAND: (S.FARMLAND, S.FOREST, S.SPORTS_LAND),
    S.HARBOUR: (S.BEACH, S.LAKE, S.RESIDENTIAL),
    S.LAKE: (S.FARMLAND, S.GRASSLAND, S.SPARSE_SHRUB_LAND),
    S.ORCHARD: (S.FARMLAND, S.GRASSLAND),
    S.RESIDENTIAL: (S.FARMLAND, S.FOREST, S.SPARSE_SHRUB_LAND, S.GRASSLAND),
    S.SPARSE_SHRUB_LAND: (S.FOREST, S.GRASSLAND, S.FARMLAND),
    S.SPORTS_LAND: (S.GRASSLAND, S.FARMLAND, S.RESIDENTIAL),
    S.TRAIN_STATION: (S.RESIDENTIAL, S.SPORTS_LAND),
}
#: Classes OSM finds by a small object near the point (confidence from its distance, not coverage).
NEAR_CLASSES = frozenset({S.BRIDGE, S.TRAIN_STATION})
CALIBRATION_CLASSES = (S.FOREST, S.FARMLAND, S.GRASSLAND, S.LAKE, S.RESIDENTIAL)
#: The date the OSM extract "was taken"; edit ages are counted back from it.
EXTRACT_DATE = datetime(2025, 6, 1, tzinfo=UTC)
PLANTED_AT = datetime(2025, 6, 2, tzinfo=UTC)  # fixed created/imported/queried times: same seed, same rows
OSM_SOURCE = "bench-extract.osm.pbf"
TRUTH_FILE = "truth.csv"
TRUTH_COLUMNS = ("pair_id", "source_id", "true_label", "osm_label", "stale", "partner", "mix", "edit_age_years")


@dataclass(frozen=True)
class CorpusSpec:
    """What to plant: pairs per true class, the stale share, the content style and the seed."""

    counts: tuple[tuple[SceneClass, int], ...]
    stale_share: float = 0.2
    style: str = "advance"  # "advance" (texture + sound events, overlap) or "calibration" (colour + tone)
    seed: int = 0
    image_px: int = 256
    mix_share: float = 0.35  # advance: pairs that mix in part of a neighbouring class
    name: str = "advance"

    @property
    def pairs(self) -> int:
        return sum(n for _, n in self.counts)

    @property
    def classes(self) -> tuple[SceneClass, ...]:
        return tuple(c for c, _ in self.counts)


def proportional_counts(total: int, weights: dict[SceneClass, int]) -> tuple[tuple[SceneClass, int], ...]:
    """`total` split in proportion to `weights` (largest remainder, so the counts sum to `total` exactly)."""
    norm = sum(weights.values())
    exact = {c: total * w / norm for c, w in weights.items()}
    counts = {c: int(v) for c, v in exact.items()}
    by_remainder = sorted(weights, key=lambda c: (-(exact[c] - counts[c]), c.index))
    for c in by_remainder[: total - sum(counts.values())]:
        counts[c] += 1
    return tuple((c, counts[c]) for c in weights)


def advance_spec(pairs: int = 1000, *, stale_share: float = 0.2, seed: int = 0, image_px: int = 256) -> CorpusSpec:
    """The ADVANCE-shaped corpus: 13 classes in the paper's proportions, `pairs` in all."""
    counts = proportional_counts(pairs, ADVANCE_COUNTS)
    return CorpusSpec(counts=counts, stale_share=stale_share, seed=seed, image_px=image_px, name="advance")


def calibration_spec(per_class: int = 40, *, stale_share: float = 0.2, seed: int = 0) -> CorpusSpec:
    """The issue's calibration corpus: 5 land-cover classes × `per_class` pairs, colour and tone per class."""
    counts = tuple((c, per_class) for c in CALIBRATION_CLASSES)
    return CorpusSpec(
        counts=counts, stale_share=stale_share, style="calibration", seed=seed, image_px=128, name="calibration"
    )


@dataclass(frozen=True)
class PlannedPair:
    """One pair to plant: its true class, what OSM claims and the evidence, and how its content is mixed."""

    index: int
    source_id: str
    truth: SceneClass
    osm: SceneClass
    partner: SceneClass | None  # a neighbouring class mixed into the content, or None
    mix: float  # share of the image / sound taken by `partner`
    coverage: dict[str, float]
    confidence: float
    last_edit_at: datetime
    elements: list[dict[str, Any]]
    pair_id: int | None = None

    @property
    def stale(self) -> bool:
        return self.osm is not self.truth

    @property
    def edit_age_years(self) -> float:
        return (EXTRACT_DATE - self.last_edit_at).days / 365.25


@dataclass
class PlantedCorpus:
    """The pairs as planted (with their store ids) and where the store and truth file are."""

    spec: CorpusSpec
    location: StoreLocation
    pairs: list[PlannedPair] = field(default_factory=list)

    @property
    def truth_path(self) -> Path:
        return self.location.media_dir.parent / TRUTH_FILE

    def by_pair_id(self) -> dict[int, PlannedPair]:
        return {p.pair_id: p for p in self.pairs if p.pair_id is not None}


# ------------------------------------------------------------------------------------------ planning


def _edit_time(rng: np.random.Generator, stale: bool) -> datetime:
    """Last edit of the deciding element: stale labels tend to be older (mean ~6.5 vs ~3.5 years), not always."""
    age = 1.5 + rng.exponential(5.0) if stale else rng.exponential(3.5)
    age = min(age, 16.0)
    return (EXTRACT_DATE - timedelta(days=round(age * 365.25), seconds=int(rng.integers(0, 86_400)))).replace(
        microsecond=0
    )


def _element(cls: SceneClass, ident: int, when: datetime, rng: np.random.Generator, decided: bool) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "node" if cls is S.TRAIN_STATION else "way",
        "id": ident,
        "version": int(rng.integers(1, 9)),
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tags": dict(sorted(CANONICAL_TAGS[cls].items())),
        "class": cls.value,
        "decided": decided,
    }
    if cls in NEAR_CLASSES:
        element["distance_m"] = round(float(rng.uniform(0.0, 35.0)), 1)
    else:
        element["area_m2"] = round(float(rng.uniform(2e4, 6e5)), 1)
    return element


def _plan_one(index: int, truth: SceneClass, stale: bool, spec: CorpusSpec, rng: np.random.Generator) -> PlannedPair:
    choices = [c for c in spec.classes if c is not truth]
    if stale:
        previous = [c for c in PREVIOUS[truth] if c in spec.classes] or choices
        osm = previous[int(rng.integers(len(previous)))]
    else:
        osm = truth
    partner, mix = None, 0.0
    if spec.style == "advance" and rng.random() < spec.mix_share:
        partner = NEIGHBOURS[truth][int(rng.integers(len(NEIGHBOURS[truth])))]
        mix = round(float(rng.uniform(0.15, 0.45)), 3)
    # Coverage of the footprint by OSM's polygons, drawn alike for stale and current labels (OSM's confidence
    # says how well its polygon matches the footprint, not whether the ground changed): the label's polygon
    # covers most of it, and as often as content is mixed a second class covers a share — the mixed-in neighbour
    # for a current label; for a stale one the new land use, partly mapped already, or a neighbour of the old.
    reduction, other = (0.0, None) if stale else (mix, partner)
    if stale and spec.style == "advance" and rng.random() < spec.mix_share:
        reduction = float(rng.uniform(0.15, 0.45))
        other = truth if rng.random() < 0.5 else NEIGHBOURS[osm][int(rng.integers(len(NEIGHBOURS[osm])))]
    coverage: dict[str, float] = {osm.value: float(rng.uniform(0.55, 1.0)) * (1.0 - reduction)}
    if other is not None and other is not osm:
        coverage[other.value] = reduction * float(rng.uniform(0.6, 1.0))
    coverage = {k: round(v, 4) for k, v in sorted(coverage.items(), key=lambda kv: S(kv[0]).index)}
    decided = _element(osm, 10_000_000 + 10 * index, _edit_time(rng, stale), rng, decided=True)
    strength = 1.0 - decided["distance_m"] / 40.0 if osm in NEAR_CLASSES else coverage[osm.value]
    elements = [decided]
    for k, candidate in enumerate(c for c in coverage if c != osm.value):
        when = EXTRACT_DATE - timedelta(days=int(rng.integers(30, 2000)))
        elements.append(_element(S(candidate), 10_000_000 + 10 * index + 1 + k, when, rng, decided=False))
    return PlannedPair(
        index=index,
        source_id=f"{spec.name}-{index:05d}",
        truth=truth,
        osm=osm,
        partner=partner,
        mix=mix,
        coverage=coverage,
        confidence=round(0.5 + 0.5 * strength, 3),
        last_edit_at=datetime.strptime(decided["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        elements=elements,
    )


def plan_corpus(spec: CorpusSpec) -> list[PlannedPair]:
    """Every pair's true class, OSM label and evidence: exactly ``round(stale_share · N)`` stale, seeded."""
    rng = np.random.default_rng([spec.seed, 1])
    truths = [c for c, n in spec.counts for _ in range(n)]
    order = rng.permutation(len(truths))  # pairs in a shuffled order, so ids say nothing about the class
    truths = [truths[i] for i in order]
    n_stale = round(spec.stale_share * len(truths))
    stale = set(rng.choice(len(truths), size=n_stale, replace=False).tolist())
    return [_plan_one(i, truth, i in stale, spec, rng) for i, truth in enumerate(truths)]


# ------------------------------------------------------------------------------------------ writing


def _write_media(media_dir: Path, pair_id: int, planned: PlannedPair, spec: CorpusSpec) -> None:
    # One stream per pair and modality: a pair's content depends on neither the other pairs nor the image size.
    rng = np.random.default_rng([spec.seed, 2, planned.index])
    pixels = render_image(planned.truth, planned.partner, planned.mix, rng, spec.image_px, spec.style)
    image_path = media_dir / image_relpath(pair_id)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(image_path, format="JPEG", quality=88)
    samples = render_sound(
        planned.truth, planned.partner, planned.mix, np.random.default_rng([spec.seed, 4, planned.index]), spec.style
    )
    write_clip(media_dir / clip_relpath(pair_id), samples)


def write_corpus(location: StoreLocation, spec: CorpusSpec) -> PlantedCorpus:
    """Create the store at `location` (as ``annotator init``), plant the pairs with media, write the truth file.

    The store must be new (an existing one is refused rather than mixed with).
    """
    path = location.sqlite_path
    if path is not None and path.exists():
        raise FileExistsError(f"{path} exists; plant a corpus into a new store")
    engine = open_store(location, create=True)
    try:
        upgrade_to_head(engine)
        location.media_dir.mkdir(parents=True, exist_ok=True)
        planted = PlantedCorpus(spec=spec, location=location)
        rng = np.random.default_rng([spec.seed, 3])
        with session_scope(engine) as session:
            for planned in plan_corpus(spec):
                lat, lon = 45.0 + float(rng.uniform(-5, 5)), 10.0 + float(rng.uniform(-10, 10))
                recording = Recording(
                    source=RecordingSource.MANIFEST,
                    source_id=planned.source_id,
                    lat=round(lat, 6),
                    lon=round(lon, 6),
                    original_path=f"recordings/{planned.source_id}.wav",
                    sha256="0" * 64,
                    file_format="WAV",
                    sample_rate=CLIP_RATE,
                    channels=1,
                    frames=10 * CLIP_RATE,
                    duration_s=10.0,
                    status=RecordingStatus.ACCEPTED,
                    imported_at=PLANTED_AT,
                )
                pair = Pair(
                    recording=recording,
                    origin=PairOrigin.ORIGINAL,
                    lat=recording.lat,
                    lon=recording.lon,
                    clip_start_s=0.0,
                    clip_seed=0,
                    clip_sample_rate=CLIP_RATE,
                    image_status=ImageStatus.PRESENT,
                    image_source="bench",
                    image_resolution_m=0.6,
                    created_at=PLANTED_AT,
                )
                session.add(pair)
                session.flush()
                pair.image_path, pair.clip_path = image_relpath(pair.id), clip_relpath(pair.id)
                _write_media(location.media_dir, pair.id, planned, spec)
                session.add(
                    OsmEvidence(
                        pair_id=pair.id,
                        label=planned.osm.value,
                        confidence=planned.confidence,
                        coverage=planned.coverage,
                        elements=planned.elements,
                        last_edit_at=planned.last_edit_at,
                        source=OSM_SOURCE,
                        source_date=EXTRACT_DATE.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        queried_at=PLANTED_AT,
                    )
                )
                planted.pairs.append(replace(planned, pair_id=pair.id))
    finally:
        engine.dispose()
    write_truth(planted)
    return planted


def write_truth(planted: PlantedCorpus) -> Path:
    """``truth.csv`` beside the media dir: each pair's true class, OSM label and whether that is stale."""
    with planted.truth_path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRUTH_COLUMNS)
        for p in planted.pairs:
            writer.writerow(
                [
                    p.pair_id,
                    p.source_id,
                    p.truth.value,
                    p.osm.value,
                    int(p.stale),
                    p.partner.value if p.partner else "",
                    p.mix,
                    f"{p.edit_age_years:.2f}",
                ]
            )
    return planted.truth_path


def read_corpus(location: StoreLocation, spec: CorpusSpec) -> PlantedCorpus:
    """A corpus planted earlier by :func:`write_corpus` with this very spec, from its truth file (no rewriting).

    Raises:
        ValueError: the truth file does not match the spec's plan (another seed, size or share).
    """
    planted = PlantedCorpus(spec=spec, location=location)
    with planted.truth_path.open(newline="") as handle:
        rows = {r["source_id"]: r for r in csv.DictReader(handle)}
    for planned in plan_corpus(spec):
        row = rows.get(planned.source_id)
        if row is None or (row["true_label"], row["osm_label"]) != (planned.truth.value, planned.osm.value):
            raise ValueError(f"{planted.truth_path} was not planted with this spec ({planned.source_id} differs)")
        planted.pairs.append(replace(planned, pair_id=int(row["pair_id"])))
    if len(rows) != len(planted.pairs):
        raise ValueError(f"{planted.truth_path} holds {len(rows)} pairs, the spec {len(planted.pairs)}")
    return planted
