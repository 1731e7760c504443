"""The samples of an export: each selected pair and its offsets, with an id, a class and a split (SPEC §8).

An original's id is its recording's filesystem-safe id (``<recording>``, or ``<recording>-<n>`` for a recording's
n-th original pair); its offsets are ``<id>_<k>`` with k = 1–4 for N, E, S, W. Samples come in (class index, id)
order, and the split is drawn per class, grouped by recording (so an original and its offsets share a split) or
by spatial block (:mod:`dataset.split`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from annotator.errors import ExportError
from annotator.export.offsets import OffsetProblem, OffsetSample
from annotator.export.selection import SelectedPair
from annotator.files import sha256_bytes
from annotator.vocabulary import OffsetDirection, PairOrigin, SceneClass, Verdict
from dataset.datacard import public_source
from dataset.imagery.crop import DEFAULT_RESOLUTION_M
from dataset.layout import IMAGE_SIZE, MetadataRow, safe_id
from dataset.split import Box, PlacedSample, Split, SplitBy, SplitPlan, footprint_around, plan_splits


@dataclass(frozen=True)
class ExportSample:
    """One sample of the dataset: its id, class, metadata and the media files it is written from."""

    id: str
    cls: SceneClass
    recording: str
    pair_id: int
    origin: PairOrigin
    direction: OffsetDirection | None
    lat: float
    lon: float
    parent: SelectedPair
    image_src: Path
    clip_src: Path
    image_source: str | None = None  # the imagery SOURCE (or "manifest") its image was cut from
    image_acquired: str | None = None
    footprint: Box | None = None

    def placed(self, default_side_m: float) -> PlacedSample:
        """The sample as the split sees it; a pair without a stored footprint gets a square of the default side."""
        box = self.footprint or footprint_around(self.lat, self.lon, default_side_m)
        return PlacedSample(self.id, self.cls, self.recording, box, self.origin == PairOrigin.ORIGINAL)

    def metadata(self, split: Split) -> MetadataRow:
        """The sample's row of metadata.csv, in `split`."""
        p = self.parent
        return MetadataRow(
            id=self.id,
            cls=self.cls,
            recording=self.recording,
            lat=self.lat,
            lon=self.lon,
            origin=self.origin,
            direction=self.direction,
            split=split.value,
            osm_label=p.osm_label or "",
            human_label=p.human_label or "",
            label_source=p.label_source,
            reviewers=";".join(p.reviewers),
            license=p.license or "",
            author=p.author or "",
            source_url=p.source_url or "",
            image_source=public_source(self.image_source),
        )


def recording_ids(pairs: Sequence[SelectedPair]) -> dict[int, str]:
    """A filesystem-safe export id per recording; ids that would collide get a short hash of the source id."""
    names = {p.recording_id: (p.source, p.source_id) for p in pairs}
    safe = {rid: safe_id(source_id) for rid, (_source, source_id) in names.items()}
    users = Counter(safe.values())
    out = {}
    for rid, (source, source_id) in names.items():
        if users[safe[rid]] > 1:
            out[rid] = f"{safe[rid]}-{sha256_bytes(f'{source}:{source_id}'.encode())[:8]}"
        else:
            out[rid] = safe[rid]
    return out


def _original_sample(pair: SelectedPair, sample_id: str, recording: str, media_dir: Path) -> ExportSample:
    return ExportSample(
        id=sample_id,
        cls=pair.label,
        recording=recording,
        pair_id=pair.pair_id,
        origin=PairOrigin.ORIGINAL,
        direction=None,
        lat=pair.lat,
        lon=pair.lon,
        parent=pair,
        image_src=media_dir / pair.image_path,
        clip_src=media_dir / pair.clip_path,
        image_source=pair.image_source,
        image_acquired=pair.image_acquired,
        footprint=pair.footprint,
    )


def _offset_sample(parent: ExportSample, offset: OffsetSample, media_dir: Path) -> ExportSample:
    return ExportSample(
        id=f"{parent.id}_{offset.direction.index}",
        cls=parent.cls,
        recording=parent.recording,
        pair_id=offset.pair_id,
        origin=PairOrigin.OFFSET,
        direction=offset.direction,
        lat=offset.lat,
        lon=offset.lon,
        parent=parent.parent,
        image_src=media_dir / offset.image_path,
        clip_src=media_dir / offset.clip_path,
        image_source=offset.image_source,
        image_acquired=offset.image_acquired,
        footprint=offset.footprint,
    )


def _offset_left_out(offset: OffsetSample, parent: SelectedPair) -> OffsetProblem | None:
    """Why a reviewer's verdict on an offset pair keeps it out of the export, or None."""
    if offset.final_label == Verdict.UNUSABLE:
        return OffsetProblem.OFFSET_UNUSABLE
    if offset.final_label is not None and offset.final_label != parent.label.value:
        return OffsetProblem.OFFSET_RELABELLED
    return None


def build_samples(
    pairs: Sequence[SelectedPair],
    kept: Sequence[SceneClass],
    offsets: dict[int, list[OffsetSample]],
    media_dir: Path,
) -> tuple[list[ExportSample], Counter[OffsetProblem]]:
    """Every sample of the export in (class index, id) order, and offsets left out per reason.

    Raises:
        ExportError: two samples would share an id.
    """
    kept_set = set(kept)
    chosen = [p for p in pairs if p.label in kept_set]
    rec_ids = recording_ids(chosen)
    seen_per_recording: Counter[int] = Counter()
    samples: list[ExportSample] = []
    left_out: Counter[OffsetProblem] = Counter()
    for pair in sorted(chosen, key=lambda p: p.pair_id):
        recording = rec_ids[pair.recording_id]
        seen_per_recording[pair.recording_id] += 1
        n = seen_per_recording[pair.recording_id]
        original = _original_sample(pair, recording if n == 1 else f"{recording}-{n}", recording, media_dir)
        samples.append(original)
        for offset in offsets.get(pair.pair_id, []):
            why = _offset_left_out(offset, pair)
            if why is not None:
                left_out[why] += 1
            else:
                samples.append(_offset_sample(original, offset, media_dir))
    duplicates = [i for i, n in Counter(s.id for s in samples).items() if n > 1]
    if duplicates:
        raise ExportError(f"two samples would share the id(s) {', '.join(sorted(duplicates)[:5])}; rename recordings")
    samples.sort(key=lambda s: (s.cls.index, s.id))
    return samples, left_out


def footprint_side_m(samples: Sequence[ExportSample]) -> float:
    """The side of the exported images' footprint: 512 px × the coarsest stored resolution (256 m at 0.5 m/px)."""
    resolutions = [s.parent.image_resolution_m for s in samples if s.parent.image_resolution_m]
    return IMAGE_SIZE * max(resolutions, default=DEFAULT_RESOLUTION_M)


def splits_of(samples: Sequence[ExportSample], seed: int, by: SplitBy, block_m: float | None) -> SplitPlan:
    """70/10/20 per class, grouped by recording (an original and its offsets share a split) or by spatial block.

    `block_m` None: the footprint side (:func:`footprint_side_m`). A pair with no stored footprint is taken as
    that square around its point.
    """
    side = footprint_side_m(samples)
    placed = [s.placed(side) for s in samples]
    return plan_splits(placed, seed, by, side if block_m is None else block_m)
