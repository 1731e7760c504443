"""The Label Studio task of a pair: media URLs, the OSM evidence as text, and the OSM prediction (SPEC §7).

Media reach the browser through Label Studio's local-files serving over the media directory (the server's
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` must be the media directory or a parent of it, as
``annotator.labelstudio.server`` sets it) or, with a base URL, from another server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from annotator.errors import LabelStudioUnavailable
from annotator.labelstudio import config as lsconfig
from annotator.store.models import OsmEvidence, Pair
from annotator.vocabulary import PairOrigin

#: Task data key holding the pre-selected OSM class (the export lists predictions by id only; pull reads this).
OSM_LABEL_KEY = "osm_label"
#: What a task without a note shows in its note field.
NO_NOTE = "—"


def model_version_of(evidence: OsmEvidence) -> str:
    """Names the OSM source and its date, e.g. ``osm:demo.osm@2024-05-01`` (Label Studio keeps ≤ 255 chars)."""
    source = evidence.source
    if "://" not in source:
        source = Path(source).name
    date = evidence.source_date or evidence.queried_at.strftime("%Y-%m-%d")
    if re.match(r"\d{4}-\d{2}-\d{2}T", date):
        date = date[:10]
    return f"osm:{source}@{date}"[:255]


@dataclass(frozen=True)
class MediaRoute:
    """How a media path (relative to the media dir) becomes a URL the browser can load."""

    media_dir: Path
    files_root: Path  # Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (the media dir by default)
    base_url: str | None = None

    @classmethod
    def checked(cls, media_dir: Path, files_root: Path | None, base_url: str | None) -> MediaRoute:
        """The route for a store's media dir; local-files serving needs it inside the files root.

        Raises:
            LabelStudioUnavailable: no `base_url` and the media dir is outside `files_root`.
        """
        media_dir = media_dir.resolve()
        root = (files_root or media_dir).resolve()
        if not base_url and not media_dir.is_relative_to(root):
            raise LabelStudioUnavailable(f"the media dir {media_dir} is not inside the local-files root {root}")
        return cls(media_dir=media_dir, files_root=root, base_url=base_url)

    def url(self, relative: str) -> str:
        """The URL of the media file at `relative` (to the media dir)."""
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{quote(relative)}"
        served = (self.media_dir / relative).relative_to(self.files_root).as_posix()
        return f"/data/local-files/?d={quote(served)}"


def _element_text(element: dict[str, Any]) -> str:
    tag_text = ", ".join(f"{k}={v}" for k, v in sorted((element.get("tags") or {}).items())[:8])
    stamp = str(element.get("timestamp") or "")[:10]
    return (
        f"{element.get('type', '?')} {element.get('id', '?')} v{element.get('version', '?')} "
        f"({stamp or 'no date'}): {tag_text}"
    )


def _evidence_texts(pair: Pair) -> dict[str, str]:
    ev = pair.osm_evidence
    pair_text = f"pair {pair.id} at {pair.lat:.6f}, {pair.lon:.6f}"
    if pair.origin != PairOrigin.ORIGINAL:
        pair_text += f" (offset {pair.direction} {pair.offset_m or 0:.0f} m from pair {pair.parent_pair_id})"
    if ev is None:
        return {"pair": pair_text, "osm": "not pre-labelled", "osm_tags": NO_NOTE}
    edit = f"; last edit {ev.last_edit_at:%Y-%m-%d}" if ev.last_edit_at else ""
    if ev.label:
        osm = f"{ev.label} (confidence {ev.confidence:.2f}{edit}; {model_version_of(ev)})"
    else:
        osm = f"no OSM class matched ({model_version_of(ev)}): choose from the image and the sound"
    tags = [_element_text(element) for element in (ev.elements or [])[:6]]
    return {"pair": pair_text, "osm": osm, "osm_tags": "; ".join(tags) or NO_NOTE}


def build_task(pair: Pair, *, media: MediaRoute, note: str = NO_NOTE, predict: bool = True) -> dict[str, Any]:
    """The Label Studio task of a pair: media URLs, evidence texts and (with an OSM class) a prediction."""
    assert pair.image_path and pair.clip_path
    data: dict[str, Any] = {
        "pair_id": pair.id,
        lsconfig.IMAGE: media.url(pair.image_path),
        lsconfig.AUDIO: media.url(pair.clip_path),
        **_evidence_texts(pair),
        "note": note,
    }
    task: dict[str, Any] = {"data": data}
    ev = pair.osm_evidence
    if predict and ev is not None and ev.label:
        data[OSM_LABEL_KEY] = ev.label
        task["predictions"] = [lsconfig.prediction(ev.label, model_version=model_version_of(ev), score=ev.confidence)]
    return task
