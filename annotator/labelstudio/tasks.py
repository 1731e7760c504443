"""The Label Studio task of a pair: media URLs, the OSM evidence as text, the OSM prediction and, once
`annotator rank` has run, the model's suggestion (SPEC §7, issue 13).

A task carries up to two predictions, the OSM class first (``osm:<source>@<date>``, score = OSM confidence) and the
rank run's suggested class (``rank:<run id>``, score = 1 − suspicion). Label Studio's uncertainty sampling serves
the lowest score of the project's model version first, so pointing the project at one or the other chooses the
review order (notes/labelstudio.md).

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
#: Task data key naming the rank run whose suggestion the task shows (a push updates unreviewed tasks where it
#: differs from the latest run's; absent on tasks pushed before any rank run).
RANK_RUN_KEY = "rank_run"
#: Model versions of rank predictions start with this; the OSM prediction's start with ``osm:``.
RANK_VERSION_PREFIX = "rank:"
#: What the model field shows before any rank run.
NO_RANK_TEXT = "no rank run yet (`annotator rank` scores how likely each label is wrong)"


def rank_model_version(run_id: int) -> str:
    """The model version of a rank run's predictions, e.g. ``rank:3``."""
    return f"{RANK_VERSION_PREFIX}{run_id}"


def is_rank_prediction(prediction: dict[str, Any]) -> bool:
    """Whether a task prediction (as Label Studio lists it) is a rank run's, not the OSM one."""
    return str(prediction.get("model_version") or "").startswith(RANK_VERSION_PREFIX)


@dataclass(frozen=True)
class RankSuggestion:
    """What a rank run says of one pair, as a task shows it (None for a pair the run did not score)."""

    run_id: int
    label: str | None  # the model's most probable class (a SceneClass value); None: the run did not score the pair
    p: float = 0.0  # its out-of-fold probability
    suspicion: float = 0.0  # how likely the current label is wrong, in [0, 1]
    rank: int = 0  # 1 = the most suspicious pair of the run

    @property
    def model_version(self) -> str:
        return rank_model_version(self.run_id)

    def text(self) -> str:
        """The task's model field, e.g. "model suggests forest (p = 0.87); suspicion 0.91 … (rank 3, rank:2)"."""
        if self.label is None:
            return f"not scored by rank run {self.run_id} (pushed after it, or left out as unusable)"
        return (
            f"model suggests {self.label} (p = {self.p:.2f}); suspicion that the current label is wrong "
            f"{self.suspicion:.2f} (rank {self.rank}, {self.model_version})"
        )

    def prediction(self) -> dict[str, Any] | None:
        """The rank prediction: the suggested class, score = 1 − suspicion (lowest first = most suspicious first)."""
        if self.label is None:
            return None
        score = min(1.0, max(0.0, 1.0 - self.suspicion))
        return lsconfig.prediction(self.label, model_version=self.model_version, score=score)


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


def osm_prediction(evidence: OsmEvidence | None) -> dict[str, Any] | None:
    """The OSM prediction of a pair: its OSM class pre-selected, score = OSM confidence; None without a class."""
    if evidence is None or not evidence.label:
        return None
    return lsconfig.prediction(evidence.label, model_version=model_version_of(evidence), score=evidence.confidence)


def rank_data(rank: RankSuggestion | None) -> dict[str, Any]:
    """The task data keys a rank run decides: the model field and the run's id (none before any run)."""
    if rank is None:
        return {lsconfig.MODEL: NO_RANK_TEXT}
    return {lsconfig.MODEL: rank.text(), RANK_RUN_KEY: rank.run_id}


def build_task(
    pair: Pair,
    *,
    media: MediaRoute,
    note: str = NO_NOTE,
    predict: bool = True,
    rank: RankSuggestion | None = None,
) -> dict[str, Any]:
    """The Label Studio task of a pair: media URLs, evidence texts, the model's suggestion and (unless `predict`
    is off) the OSM prediction then the rank prediction, where there is one of each."""
    assert pair.image_path and pair.clip_path
    data: dict[str, Any] = {
        "pair_id": pair.id,
        lsconfig.IMAGE: media.url(pair.image_path),
        lsconfig.AUDIO: media.url(pair.clip_path),
        **_evidence_texts(pair),
        **rank_data(rank),
        "note": note,
    }
    task: dict[str, Any] = {"data": data}
    if not predict:
        return task
    ev = pair.osm_evidence
    osm = osm_prediction(ev)
    if osm is not None and ev is not None:
        data[OSM_LABEL_KEY] = ev.label
    predictions = [p for p in (osm, rank.prediction() if rank else None) if p is not None]
    if predictions:
        task["predictions"] = predictions
    return task
