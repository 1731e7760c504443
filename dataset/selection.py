"""Which pairs an export takes, and with which label (SPEC §8).

By default only pairs with a final *human* label: reviewed, not ``unusable``, not in conflict. With
``include_unreviewed`` the pairs nobody reviewed take their OSM label and are marked ``label_source = "osm"``.
Only ``original`` pairs are selected here; offset pairs are derived from them by :mod:`dataset.balance`.
Every pair left out is counted under a reason, so the curator sees why the export is smaller than the store.
The selected pairs and their offsets then become the export's samples, each with its id (``<recording>`` and
``<recording>_<k>``) and split (:func:`build_samples`, :func:`splits_of`).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import ExportError
from annotator.store.models import OsmEvidence, Pair, Recording, Review
from annotator.vocabulary import FinalReason, SceneClass, Verdict
from dataset import layout
from dataset.split import Split, assign_splits

if TYPE_CHECKING:  # balance imports this module
    from dataset.balance import OffsetSample

LABEL_SOURCE_HUMAN = "human"
LABEL_SOURCE_OSM = "osm"

#: Reasons a pair is left out of an export, with the sentence the summary prints for each.
SKIP_REASONS: dict[str, str] = {
    "unusable": "a reviewer marked it unusable",
    "conflict": "reviewers disagree (conflict, needs adjudication)",
    "unreviewed": "no human review yet (pass --include-unreviewed to use its OSM label)",
    "no_osm_label": "no human review and OSM suggested no class",
    "unknown_label": "its label is not one of the 13 classes",
    "no_image": "no image yet (run `annotator imagery fill`)",
    "no_clip": "no clip stored",
    "image_file_missing": "its image file is missing from the media directory",
    "clip_file_missing": "its clip file is missing from the media directory",
}


@dataclass(frozen=True)
class SelectedPair:
    """An original pair chosen for export, with everything the export needs from the store."""

    pair_id: int
    recording_id: int
    source: str
    source_id: str
    label: SceneClass
    label_source: str  # "human" or "osm"
    osm_label: str | None
    human_label: str | None
    reviewers: tuple[str, ...]
    lat: float
    lon: float
    image_path: str  # relative to the media directory
    clip_path: str  # relative to the media directory
    license: str | None
    author: str | None


@dataclass
class Selection:
    """The selected pairs (ordered by pair id) and how many were skipped, per reason."""

    pairs: list[SelectedPair] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def reviewers_by_pair(session: Session) -> dict[int, tuple[str, ...]]:
    """The distinct annotators of every pair's live verdicts (retracted reviews and skips do not count)."""
    rows = session.execute(
        select(Review.pair_id, Review.annotator).where(
            Review.retracted_at.is_(None), Review.verdict != Verdict.SKIPPED.value
        )
    )
    names: dict[int, set[str]] = defaultdict(set)
    for pair_id, annotator in rows:
        names[pair_id].add(annotator)
    return {pair_id: tuple(sorted(found)) for pair_id, found in names.items()}


def _human_label(pair: Pair) -> str | None:
    """The pair's final label when a human decided it (an ``osm_only`` final label is not a review)."""
    if pair.final_label is None or pair.final_reason == FinalReason.OSM_ONLY.value:
        return None
    return pair.final_label


def choose_label(pair: Pair, osm_label: str | None, include_unreviewed: bool) -> tuple[str | None, str]:
    """(label, label_source) for a pair, or (None, skip reason)."""
    if pair.final_reason == FinalReason.CONFLICT.value:
        return None, "conflict"
    human = _human_label(pair)
    if human == Verdict.UNUSABLE.value:
        return None, "unusable"
    if human is not None:
        return human, LABEL_SOURCE_HUMAN
    if not include_unreviewed:
        return None, "unreviewed"
    if osm_label is None:
        return None, "no_osm_label"
    return osm_label, LABEL_SOURCE_OSM


def select_pairs(session: Session, media_dir: Path, *, include_unreviewed: bool = False) -> Selection:
    """Select the original pairs an export takes (see the module docstring), in pair-id order.

    Args:
        session: an open session (read only).
        media_dir: the media directory the pairs' relative paths resolve against (files must exist).
        include_unreviewed: take the OSM label of pairs that have no human label.
    """
    reviewers = reviewers_by_pair(session)
    rows = session.execute(
        select(Pair, Recording, OsmEvidence.label)
        .join(Recording, Pair.recording_id == Recording.id)
        .outerjoin(OsmEvidence, OsmEvidence.pair_id == Pair.id)
        .where(Pair.origin == "original", Recording.status == "accepted")
        .order_by(Pair.id)
    )
    selection = Selection()
    for pair, recording, osm_label in rows:
        label, label_source = choose_label(pair, osm_label, include_unreviewed)
        if label is None:
            selection.skipped[label_source] += 1
            continue
        try:
            cls = SceneClass.parse(label)
        except ValueError:
            selection.skipped["unknown_label"] += 1
            continue
        reason = _media_problem(pair, media_dir)
        if reason is not None:
            selection.skipped[reason] += 1
            continue
        assert pair.image_path is not None and pair.clip_path is not None
        selection.pairs.append(
            SelectedPair(
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
            )
        )
    return selection


def _media_problem(pair: Pair, media_dir: Path) -> str | None:
    """Why the pair's media cannot be exported, or None when both files are there."""
    if pair.image_status != "present" or not pair.image_path:
        return "no_image"
    if not pair.clip_path:
        return "no_clip"
    if not (media_dir / pair.image_path).is_file():
        return "image_file_missing"
    if not (media_dir / pair.clip_path).is_file():
        return "clip_file_missing"
    return None


@dataclass(frozen=True)
class ExportSample:
    """One sample of the dataset: its id, class, metadata and the media files it is written from."""

    id: str
    cls: SceneClass
    recording: str
    pair_id: int
    origin: str
    direction: str
    lat: float
    lon: float
    parent: SelectedPair
    image_src: Path
    clip_src: Path

    def metadata(self, split: str) -> layout.MetadataRow:
        p = self.parent
        return layout.MetadataRow(
            id=self.id,
            cls=self.cls,
            recording=self.recording,
            lat=self.lat,
            lon=self.lon,
            origin=self.origin,
            direction=self.direction,
            split=split,
            osm_label=p.osm_label or "",
            human_label=p.human_label or "",
            label_source=p.label_source,
            reviewers=";".join(p.reviewers),
            license=p.license or "",
            author=p.author or "",
        )


# ------------------------------------------------------------------------------------------ ids and samples


def recording_ids(pairs: Sequence[SelectedPair]) -> dict[int, str]:
    """A filesystem-safe export id per recording; ids that would collide get a short hash of the source id."""
    names = {p.recording_id: (p.source, p.source_id) for p in pairs}
    safe = {rid: layout.safe_id(source_id) for rid, (_source, source_id) in names.items()}
    users = Counter(safe.values())
    out = {}
    for rid, (source, source_id) in names.items():
        if users[safe[rid]] > 1:
            digest = hashlib.sha256(f"{source}:{source_id}".encode()).hexdigest()[:8]
            out[rid] = f"{safe[rid]}-{digest}"
        else:
            out[rid] = safe[rid]
    return out


def build_samples(
    pairs: Sequence[SelectedPair],
    kept: Sequence[SceneClass],
    offsets: dict[int, list[OffsetSample]],
    media_dir: Path,
) -> tuple[list[ExportSample], Counter[str]]:
    """Every sample of the export in (class index, id) order, and offsets left out per reason."""
    kept_set = set(kept)
    chosen = [p for p in pairs if p.label in kept_set]
    rec_ids = recording_ids(chosen)
    seen_per_recording: Counter[int] = Counter()
    samples: list[ExportSample] = []
    left_out: Counter[str] = Counter()
    for pair in sorted(chosen, key=lambda p: p.pair_id):
        recording = rec_ids[pair.recording_id]
        seen_per_recording[pair.recording_id] += 1
        n = seen_per_recording[pair.recording_id]
        base = recording if n == 1 else f"{recording}-{n}"  # a recording with several original pairs
        samples.append(
            ExportSample(
                id=base,
                cls=pair.label,
                recording=recording,
                pair_id=pair.pair_id,
                origin="original",
                direction="",
                lat=pair.lat,
                lon=pair.lon,
                parent=pair,
                image_src=media_dir / pair.image_path,
                clip_src=media_dir / pair.clip_path,
            )
        )
        for offset in offsets.get(pair.pair_id, []):
            if offset.final_label == Verdict.UNUSABLE.value:
                left_out["offset_unusable"] += 1
                continue
            if offset.final_label is not None and offset.final_label != pair.label.value:
                left_out["offset_relabelled"] += 1
                continue
            samples.append(
                ExportSample(
                    id=f"{base}_{offset.offset_index}",
                    cls=pair.label,
                    recording=recording,
                    pair_id=offset.pair_id,
                    origin="offset",
                    direction=offset.direction,
                    lat=offset.lat,
                    lon=offset.lon,
                    parent=pair,
                    image_src=media_dir / offset.image_path,
                    clip_src=media_dir / offset.clip_path,
                )
            )
    duplicates = [i for i, n in Counter(s.id for s in samples).items() if n > 1]
    if duplicates:
        raise ExportError(f"two samples would share the id(s) {', '.join(sorted(duplicates)[:5])}; rename recordings")
    samples.sort(key=lambda s: (s.cls.index, s.id))
    return samples, left_out


def splits_of(samples: Sequence[ExportSample], seed: int) -> dict[str, Split]:
    """70/10/20 per class, grouped by recording: an original and its offsets share a split."""
    return assign_splits(((s.id, s.cls, s.recording) for s in samples), seed)
