"""The overlay image of a pair: its aerial crop with the deciding OSM geometries drawn, for the review task.

Rendered by :func:`dataset.overlay.render_overlay` from the stored evidence (``OsmEvidence.elements[*].geometry``,
clipped to a frame around the footprint and simplified well below a pixel by :mod:`annotator.osm.decide`), into
``<media dir>/overlays/<pair id>-<evidence id>.jpg``: a new decision (``prelabel --force``) gets a new file, so a
task never shows the picture of an older decision. Evidence stored by a version that kept no geometry still gets
an overlay — the footprint and the point, with a caption saying why nothing else is drawn.

``annotator prelabel`` renders the overlays of the pairs it decides (when they have an image); ``ls push`` calls
:func:`ensure_overlays` before building each batch, for anything still missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from annotator.errors import AnnotatorError
from annotator.files import atomic_write_bytes
from annotator.store.models import OsmEvidence, Pair
from dataset.imagery.geo import footprint_bbox
from dataset.overlay import OverlayShape, render_overlay

OVERLAY_FOLDER = "overlays"
NO_GEOMETRY_CAPTION = "no OSM geometry stored (evidence of an older version): footprint and point only"
NO_MATCH_CAPTION = "OSM matched no class here"
ASSUMED_FOOTPRINT_CAPTION = "footprint unknown: drawn as a 256 m square at 0.5 m/px"


@dataclass
class OverlayReport:
    """What :func:`ensure_overlays` did."""

    rendered: int = 0
    existing: int = 0  # already on disk
    without_evidence: int = 0  # no image or no OSM evidence: nothing to draw
    failed: int = 0  # the image could not be read, or the point is beyond the imagery maths
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # the first few, "pair 17: …"

    @property
    def per_thousand_s(self) -> float:
        """Seconds per 1,000 overlays rendered."""
        return self.seconds / self.rendered * 1000 if self.rendered else 0.0


def overlay_relpath(pair: Pair) -> str | None:
    """``overlays/<pair id>-<evidence id>.jpg`` (relative to the media dir); None without image or evidence."""
    evidence = pair.osm_evidence
    if not pair.image_path or evidence is None or evidence.id is None:
        return None
    return f"{OVERLAY_FOLDER}/{pair.id}-{evidence.id}.jpg"


def overlay_shapes(evidence: OsmEvidence) -> tuple[list[OverlayShape], bool]:
    """The shapes to draw (candidates first, the decided element last, on top) and whether any had geometry
    stored at all (evidence written before geometry was kept has none)."""
    elements = [e for e in (evidence.elements or []) if isinstance(e, dict)]
    stored = any("geometry" in e for e in elements)
    shapes = [
        OverlayShape(geometry=e.get("geometry"), label=e.get("class"), decided=bool(e.get("decided"))) for e in elements
    ]
    shapes.sort(key=lambda s: s.decided)
    return shapes, stored


@dataclass(frozen=True)
class OverlayJob:
    """Everything one overlay is drawn from, read off the ORM objects in the caller's thread (a Session is not
    thread-safe; the render threads see only these plain values)."""

    pair_id: int
    image: Path
    footprint: tuple[float, float, float, float]
    point: tuple[float, float]  # (lon, lat)
    shapes: tuple[OverlayShape, ...]
    caption: str | None

    @classmethod
    def of(cls, media_dir: Path, pair: Pair) -> OverlayJob:
        """The job of a pair with an image and evidence."""
        evidence = pair.osm_evidence
        assert pair.image_path and evidence is not None
        shapes, stored = overlay_shapes(evidence)
        captions = []
        footprint = pair.footprint
        if footprint is None:
            footprint = footprint_bbox(pair.lat, pair.lon)
            captions.append(ASSUMED_FOOTPRINT_CAPTION)
        if not shapes:
            captions.append(NO_MATCH_CAPTION)
        elif not stored:
            captions.append(NO_GEOMETRY_CAPTION)
        return cls(
            pair_id=pair.id,
            image=Path(media_dir) / pair.image_path,
            footprint=footprint,
            point=(pair.lon, pair.lat),
            shapes=tuple(shapes),
            caption="; ".join(captions) or None,
        )

    def render(self) -> bytes:
        """The overlay JPEG. Raises OSError when the image cannot be read."""
        return render_overlay(self.image.read_bytes(), self.footprint, self.shapes, self.point, caption=self.caption)


def render_pair_overlay(media_dir: Path, pair: Pair) -> bytes:
    """The overlay JPEG of a pair with an image and evidence.

    Raises:
        OSError: the image cannot be read. AnnotatorError: the point is beyond Web-Mercator's latitudes.
    """
    return OverlayJob.of(media_dir, pair).render()


def _render_to(job: OverlayJob, target: Path) -> str | None:
    """Render and write one overlay; the error message when it could not be drawn."""
    try:
        data = job.render()
    except (OSError, ValueError, AnnotatorError) as exc:  # PIL's UnidentifiedImageError is an OSError
        return f"pair {job.pair_id}: {exc}"
    atomic_write_bytes(target, data)
    return None


def ensure_overlays(
    media_dir: Path, pairs: Sequence[Pair], *, force: bool = False, workers: int | None = None
) -> OverlayReport:
    """Render the overlays of `pairs` that are not on disk yet (all of them with `force`), each written atomically.

    A pair whose image cannot be read is counted as failed and skipped (the push's media check names the cause);
    nothing raises for one bad pair. The pairs' ``osm_evidence`` should be loaded (selectinload) by the caller.
    What each overlay needs is read off the pairs here; the drawing runs on `workers` threads (default: up to 4,
    one per core) — Pillow decodes, draws and encodes without holding the GIL.
    """
    report = OverlayReport()
    started = time.perf_counter()
    media_dir = Path(media_dir)
    todo: list[tuple[OverlayJob, Path]] = []
    for pair in pairs:
        rel = overlay_relpath(pair)
        if rel is None:
            report.without_evidence += 1
            continue
        target = media_dir / rel
        if not force and target.is_file():
            report.existing += 1
            continue
        try:
            todo.append((OverlayJob.of(media_dir, pair), target))
        except AnnotatorError as exc:  # a point beyond Web-Mercator's latitudes: no footprint to draw
            report.failed += 1
            if len(report.failures) < 5:
                report.failures.append(f"pair {pair.id}: {exc}")
    if todo:
        (media_dir / OVERLAY_FOLDER).mkdir(parents=True, exist_ok=True)
        threads = workers or min(4, os.cpu_count() or 1)
        if threads > 1 and len(todo) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                errors = list(pool.map(lambda item: _render_to(*item), todo))
        else:
            errors = [_render_to(job, target) for job, target in todo]
        for error in errors:
            if error is None:
                report.rendered += 1
                continue
            report.failed += 1
            if len(report.failures) < 5:
                report.failures.append(error)
    report.seconds = time.perf_counter() - started
    return report
