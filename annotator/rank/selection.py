"""Which pairs a rank run scores, with which current label, and what OSM said about them.

Every pair of an accepted recording, original or offset, whose image and clip are in the media directory. Its
current label is the human final label where there is one (a review, not ``osm_only``, not a ``conflict``), else
the OSM label. An offset pair is judged on the label its export would carry: its own verdict, else its parent's
current label (its OSM label and evidence are its parent's; OSM evidence of its own is not used). Pairs whose
label is ``unusable`` are left out; pairs with no label at all are scored (the model suggests a class) but not
trained on. Pairs are grouped by recording, so an offset pair and its parent always fall in the same fold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.store.models import OsmEvidence, Pair, Recording
from annotator.vocabulary import (
    FinalReason,
    ImageStatus,
    LabelSource,
    PairOrigin,
    RecordingStatus,
    SceneClass,
    Verdict,
)


class RankSkip(StrEnum):
    """Why a pair of an accepted recording is not scored."""

    UNUSABLE = "unusable"
    NO_IMAGE = "no_image"
    NO_CLIP = "no_clip"
    MEDIA_FILE_MISSING = "media_file_missing"
    PARENT_LEFT_OUT = "parent_left_out"


#: The sentence the rank summary prints for each skip reason.
RANK_SKIP_REASONS: dict[str, str] = {
    RankSkip.UNUSABLE: "a reviewer marked it (or its parent) unusable",
    RankSkip.NO_IMAGE: "no image yet (run `annotator imagery fill`)",
    RankSkip.NO_CLIP: "no clip stored",
    RankSkip.MEDIA_FILE_MISSING: "its image or clip file is missing from the media directory",
    RankSkip.PARENT_LEFT_OUT: "an offset pair whose parent pair is not in the store's accepted pairs",
}


@dataclass(frozen=True)
class OsmSignals:
    """What the store keeps about an OSM label besides the label itself (for :mod:`annotator.rank.suspicion`)."""

    confidence: float  # the decision's confidence, 0–1
    coverage: float  # fraction of the footprint covered by the OSM label's class, 0–1
    last_edit_at: datetime | None  # last edit of the deciding element
    queried_at: datetime | None  # when OSM was asked (the age of an edit is measured to here)


@dataclass(frozen=True)
class RankCandidate:
    """A pair to score: its identity, current label and media (paths relative to the media directory)."""

    pair_id: int
    recording_id: int
    recording_source_id: str
    origin: PairOrigin
    osm_label: str | None
    current_label: SceneClass | None
    label_origin: LabelSource | None
    image_path: str
    clip_path: str
    osm: OsmSignals | None

    @property
    def group(self) -> str:
        """The fold group: the recording (an offset pair shares its parent's)."""
        return str(self.recording_id)


@dataclass
class CandidateSelection:
    """The pairs to score in pair-id order, and the pairs left out per reason."""

    candidates: list[RankCandidate] = field(default_factory=list)
    skipped: Counter[RankSkip] = field(default_factory=Counter)


def human_final_label(final_label: str | None, final_reason: FinalReason | None) -> str | None:
    """A pair's final label when humans decided it: a review, not ``osm_only`` and not a ``conflict``."""
    if final_label is None or final_reason in (FinalReason.OSM_ONLY, FinalReason.CONFLICT):
        return None
    return final_label


def _as_class(label: str | None) -> SceneClass | None:
    if label is None:
        return None
    try:
        return SceneClass.parse(label)
    except ValueError:
        return None  # a label from outside the vocabulary is no training target; the pair is still scored


def _resolve_label(
    pair: Pair, parent: tuple[str | None, LabelSource | None] | None, osm_label: str | None
) -> tuple[str | None, LabelSource | None]:
    """(current label, where it came from): the pair's own human label, else its parent's or its OSM label."""
    own = human_final_label(pair.final_label, pair.final_reason)
    if own is not None:
        return own, LabelSource.HUMAN
    if parent is not None:
        return parent
    if osm_label is not None:
        return osm_label, LabelSource.OSM
    return None, None


def _media_problem(pair: Pair, media_dir: Path) -> RankSkip | None:
    if pair.image_status != ImageStatus.PRESENT or not pair.image_path:
        return RankSkip.NO_IMAGE
    if not pair.clip_path:
        return RankSkip.NO_CLIP
    if not (media_dir / pair.image_path).is_file() or not (media_dir / pair.clip_path).is_file():
        return RankSkip.MEDIA_FILE_MISSING
    return None


def _osm_by_pair(session: Session) -> dict[int, tuple[str | None, OsmSignals]]:
    rows = session.execute(
        select(
            OsmEvidence.pair_id,
            OsmEvidence.label,
            OsmEvidence.confidence,
            OsmEvidence.coverage,
            OsmEvidence.last_edit_at,
            OsmEvidence.queried_at,
        )
    )
    found: dict[int, tuple[str | None, OsmSignals]] = {}
    for pair_id, label, confidence, coverage, last_edit_at, queried_at in rows:
        share = _coverage_of(coverage, label)
        found[pair_id] = (label, OsmSignals(float(confidence or 0.0), share, last_edit_at, queried_at))
    return found


def _coverage_of(coverage: Any, label: str | None) -> float:
    if label is None or not isinstance(coverage, dict):
        return 0.0
    try:
        return float(coverage.get(label, 0.0))
    except (TypeError, ValueError):
        return 0.0


def select_candidates(session: Session, media_dir: Path) -> CandidateSelection:
    """The pairs a rank run scores (see the module docstring), in pair-id order.

    Args:
        session: an open session (read only).
        media_dir: the media directory the pairs' relative paths resolve against.
    """
    osm = _osm_by_pair(session)
    rows = session.execute(
        select(Pair, Recording.source_id)
        .join(Recording, Pair.recording_id == Recording.id)
        .where(Recording.status == RecordingStatus.ACCEPTED)
        .order_by(Pair.id)
    ).all()
    # Parents first: an offset pair without a verdict of its own takes its parent's current label and OSM label.
    resolved: dict[int, tuple[str | None, LabelSource | None]] = {}
    for pair, _source_id in rows:
        if pair.origin == PairOrigin.ORIGINAL:
            resolved[pair.id] = _resolve_label(pair, None, osm.get(pair.id, (None, None))[0])
    selection = CandidateSelection()
    for pair, source_id in rows:
        osm_of = pair.id if pair.origin == PairOrigin.ORIGINAL else pair.parent_pair_id
        osm_label, signals = osm.get(osm_of, (None, None)) if osm_of is not None else (None, None)
        if pair.origin == PairOrigin.ORIGINAL:
            label, label_origin = resolved[pair.id]
        elif pair.parent_pair_id in resolved:
            label, label_origin = _resolve_label(pair, resolved[pair.parent_pair_id], None)
        else:
            selection.skipped[RankSkip.PARENT_LEFT_OUT] += 1
            continue
        if label == Verdict.UNUSABLE:
            selection.skipped[RankSkip.UNUSABLE] += 1
            continue
        problem = _media_problem(pair, media_dir)
        if problem is not None:
            selection.skipped[problem] += 1
            continue
        assert pair.image_path is not None and pair.clip_path is not None
        current = _as_class(label)
        selection.candidates.append(
            RankCandidate(
                pair_id=pair.id,
                recording_id=pair.recording_id,
                recording_source_id=source_id,
                origin=pair.origin,
                osm_label=osm_label,
                current_label=current,
                label_origin=label_origin if current is not None else None,
                image_path=pair.image_path,
                clip_path=pair.clip_path,
                osm=signals if label_origin == LabelSource.OSM else None,
            )
        )
    return selection
