"""Which pairs an export takes, and with which label (SPEC §8).

By default only pairs with a final *human* label: reviewed, not ``unusable``, not in conflict. With
``include_unreviewed`` the pairs nobody reviewed take their OSM label and are marked ``label_source = osm``.
Only original pairs are selected here; offset pairs are derived from them by :mod:`annotator.export.offsets`.
Every pair left out is counted under a :class:`SkipReason`, so the curator sees why the export is smaller than
the store.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.store.models import OsmEvidence, Pair, Recording, Review
from annotator.vocabulary import (
    FinalReason,
    ImageStatus,
    LabelSource,
    PairOrigin,
    RecordingStatus,
    SceneClass,
    Verdict,
)


class SkipReason(StrEnum):
    """Why an original pair is left out of an export."""

    UNUSABLE = "unusable"
    CONFLICT = "conflict"
    UNREVIEWED = "unreviewed"
    NO_OSM_LABEL = "no_osm_label"
    UNKNOWN_LABEL = "unknown_label"
    NO_IMAGE = "no_image"
    NO_CLIP = "no_clip"
    IMAGE_FILE_MISSING = "image_file_missing"
    CLIP_FILE_MISSING = "clip_file_missing"


#: The sentence the export summary prints for each skip reason.
SKIP_REASONS: dict[str, str] = {
    SkipReason.UNUSABLE: "a reviewer marked it unusable",
    SkipReason.CONFLICT: "reviewers disagree (conflict, needs adjudication)",
    SkipReason.UNREVIEWED: "no human review yet (pass --include-unreviewed to use its OSM label)",
    SkipReason.NO_OSM_LABEL: "no human review and OSM suggested no class",
    SkipReason.UNKNOWN_LABEL: "its label is not one of the 13 classes",
    SkipReason.NO_IMAGE: "no image yet (run `annotator imagery fill`)",
    SkipReason.NO_CLIP: "no clip stored",
    SkipReason.IMAGE_FILE_MISSING: "its image file is missing from the media directory",
    SkipReason.CLIP_FILE_MISSING: "its clip file is missing from the media directory",
}


@dataclass(frozen=True)
class SelectedPair:
    """An original pair chosen for export, with everything the export needs from the store."""

    pair_id: int
    recording_id: int
    source: str
    source_id: str
    label: SceneClass
    label_source: LabelSource
    osm_label: str | None
    human_label: str | None
    reviewers: tuple[str, ...]
    lat: float
    lon: float
    image_path: str  # relative to the media directory
    clip_path: str  # relative to the media directory
    license: str | None
    author: str | None
    # provenance for the data card, ATTRIBUTION.csv and metadata.csv
    source_url: str | None = None
    image_source: str | None = None  # IMAGE_SOURCE_MANIFEST or the imagery SOURCE string
    image_acquired: str | None = None
    image_resolution_m: float | None = None
    footprint: tuple[float, float, float, float] | None = None  # (west, south, east, north), degrees
    osm_source: str | None = None  # the Overpass endpoint or extract its OSM evidence came from
    osm_source_date: str | None = None
    final_reason: FinalReason | None = None
    looped: bool = False


@dataclass
class Selection:
    """The selected pairs (ordered by pair id) and how many were skipped, per reason."""

    pairs: list[SelectedPair] = field(default_factory=list)
    skipped: Counter[SkipReason] = field(default_factory=Counter)


def reviewers_by_pair(session: Session) -> dict[int, tuple[str, ...]]:
    """The distinct annotators of every pair's live verdicts (retracted reviews and skips do not count)."""
    rows = session.execute(
        select(Review.pair_id, Review.annotator).where(Review.retracted_at.is_(None), Review.verdict != Verdict.SKIPPED)
    )
    names: dict[int, set[str]] = defaultdict(set)
    for pair_id, annotator in rows:
        names[pair_id].add(annotator)
    return {pair_id: tuple(sorted(found)) for pair_id, found in names.items()}


def _human_label(pair: Pair) -> str | None:
    """The pair's final label when a human decided it (an ``osm_only`` final label is not a review)."""
    if pair.final_label is None or pair.final_reason == FinalReason.OSM_ONLY:
        return None
    return pair.final_label


def choose_label(pair: Pair, osm_label: str | None, include_unreviewed: bool) -> tuple[str, LabelSource] | SkipReason:
    """(label, label source) for a pair, or why it has no label to export."""
    if pair.final_reason == FinalReason.CONFLICT:
        return SkipReason.CONFLICT
    human = _human_label(pair)
    if human == Verdict.UNUSABLE:
        return SkipReason.UNUSABLE
    if human is not None:
        return human, LabelSource.HUMAN
    if not include_unreviewed:
        return SkipReason.UNREVIEWED
    if osm_label is None:
        return SkipReason.NO_OSM_LABEL
    return osm_label, LabelSource.OSM


def _media_problem(pair: Pair, media_dir: Path) -> SkipReason | None:
    """Why the pair's media cannot be exported, or None when both files are there."""
    if pair.image_status != ImageStatus.PRESENT or not pair.image_path:
        return SkipReason.NO_IMAGE
    if not pair.clip_path:
        return SkipReason.NO_CLIP
    if not (media_dir / pair.image_path).is_file():
        return SkipReason.IMAGE_FILE_MISSING
    if not (media_dir / pair.clip_path).is_file():
        return SkipReason.CLIP_FILE_MISSING
    return None


def _selected(
    pair: Pair,
    recording: Recording,
    evidence: tuple[str | None, str | None, str | None],
    media_dir: Path,
    include_unreviewed: bool,
    reviewers: dict[int, tuple[str, ...]],
) -> SelectedPair | SkipReason:
    """The pair as the export takes it, or why it is left out."""
    osm_label, osm_source, osm_source_date = evidence
    chosen = choose_label(pair, osm_label, include_unreviewed)
    if isinstance(chosen, SkipReason):
        return chosen
    label, label_source = chosen
    try:
        cls = SceneClass.parse(label)
    except ValueError:
        return SkipReason.UNKNOWN_LABEL
    problem = _media_problem(pair, media_dir)
    if problem is not None:
        return problem
    assert pair.image_path is not None and pair.clip_path is not None
    return SelectedPair(
        pair_id=pair.id,
        recording_id=recording.id,
        source=recording.source,
        source_id=recording.source_id,
        label=cls,
        label_source=label_source,
        osm_label=osm_label,
        human_label=_human_label(pair),
        reviewers=reviewers.get(pair.id, ()),
        lat=pair.lat,
        lon=pair.lon,
        image_path=pair.image_path,
        clip_path=pair.clip_path,
        license=recording.license,
        author=recording.author,
        source_url=recording.source_url,
        image_source=pair.image_source,
        image_acquired=pair.image_acquired,
        image_resolution_m=pair.image_resolution_m,
        footprint=pair.footprint,
        osm_source=osm_source,
        osm_source_date=osm_source_date,
        final_reason=pair.final_reason,
        looped=recording.looped,
    )


def select_pairs(session: Session, media_dir: Path, *, include_unreviewed: bool = False) -> Selection:
    """Select the original pairs an export takes (see the module docstring), in pair-id order.

    Args:
        session: an open session (read only).
        media_dir: the media directory the pairs' relative paths resolve against (files must exist).
        include_unreviewed: take the OSM label of pairs that have no human label.
    """
    reviewers = reviewers_by_pair(session)
    rows = session.execute(
        select(Pair, Recording, OsmEvidence.label, OsmEvidence.source, OsmEvidence.source_date)
        .join(Recording, Pair.recording_id == Recording.id)
        .outerjoin(OsmEvidence, OsmEvidence.pair_id == Pair.id)
        .where(Pair.origin == PairOrigin.ORIGINAL, Recording.status == RecordingStatus.ACCEPTED)
        .order_by(Pair.id)
    )
    selection = Selection()
    for pair, recording, osm_label, osm_source, osm_date in rows:
        evidence = (osm_label, osm_source, osm_date)
        found = _selected(pair, recording, evidence, media_dir, include_unreviewed, reviewers)
        if isinstance(found, SelectedPair):
            selection.pairs.append(found)
        else:
            selection.skipped[found] += 1
    return selection
