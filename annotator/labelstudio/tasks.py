"""The Label Studio task of a pair: media URLs, the evidence an annotator weighs, the OSM prediction and, once
`annotator rank` has run, the model's suggestion (SPEC §7, issues 13 and 14).

The evidence names the recording (source, id, author, licence, a link to its page), the imagery's acquisition date
when known, and each deciding OSM element with a link to its page on openstreetmap.org, its last edit and age (an
edit older than :data:`OLD_EDIT_YEARS` is flagged); it is HTML for Label Studio's HyperText tags, built only from
escaped values and links whose scheme is http(s), so nothing an OSM mapper or a recordist wrote can inject markup.
The ``overlay`` image (:mod:`annotator.labelstudio.overlays`) shows the deciding geometries on the aerial crop.

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
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from annotator.errors import LabelStudioUnavailable
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.overlays import overlay_relpath
from annotator.store.models import OsmEvidence, Pair, Recording
from annotator.vocabulary import PairOrigin, RecordingSource

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
#: An OSM edit older than this many years is flagged "old": the ground may have changed since.
OLD_EDIT_YEARS = 5.0
#: At most this many OSM elements are listed in a task (the decided one first).
MAX_LISTED_ELEMENTS = 6
#: At most this many tags are listed per OSM element.
MAX_LISTED_TAGS = 8
OSM_WEB = "https://www.openstreetmap.org"
FREESOUND_PAGE = "https://freesound.org/s/{id}/"
#: The overlay image of a task whose pair has none (no OSM evidence yet): a small grey square, inline, because
#: Label Studio refuses a task without a value for each image of the labelling config.
NO_OVERLAY = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAFElEQVR42mNsaGhggAEmBiSAmwMATAQBiHvQRdYAAAAASUVORK5CYII="
)
_OSM_TYPES = ("node", "way", "relation")


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


def _link(url: str | None, text: str) -> str:
    """An HTML link opening in a new tab, or the escaped text alone when `url` is not an http(s) URL."""
    if not url or urlsplit(url).scheme not in ("http", "https"):
        return escape(text)
    return f'<a href="{escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{escape(text)}</a>'


def recording_url(recording: Recording) -> str | None:
    """The recording's page: its stored source URL (http(s) only), else its Freesound page; None when unknown."""
    if recording.source_url and urlsplit(recording.source_url).scheme in ("http", "https"):
        return recording.source_url
    if recording.source == RecordingSource.FREESOUND and str(recording.source_id).isdigit():
        return FREESOUND_PAGE.format(id=recording.source_id)
    return None


def element_url(element: dict[str, Any]) -> str | None:
    """The element's page on openstreetmap.org, e.g. https://www.openstreetmap.org/way/123; None if malformed."""
    kind, ident = element.get("type"), element.get("id")
    if kind not in _OSM_TYPES or isinstance(ident, bool) or not isinstance(ident, int) or ident <= 0:
        return None
    return f"{OSM_WEB}/{kind}/{ident}"


def _edited(stamp: str | datetime | None) -> datetime | None:
    if isinstance(stamp, datetime):
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def edit_age_text(stamp: str | datetime | None, now: datetime) -> str:
    """ "edited 2016-04-02, 10.7 years ago (old …)" — or "no edit date"; escaped HTML."""
    edited = _edited(stamp)
    if edited is None:
        return "no edit date"
    years = max(0.0, (now - edited).total_seconds() / (365.25 * 86400))
    text = f"edited {edited:%Y-%m-%d}, {years:.1f} years ago"
    if years > OLD_EDIT_YEARS:
        return f'{escape(text)} <b style="color: #c0392b">old: the ground may have changed since</b>'
    return escape(text)


def _element_html(element: dict[str, Any], now: datetime) -> str:
    name = f"{element.get('type', '?')} {element.get('id', '?')}"
    tags = sorted((element.get("tags") or {}).items())[:MAX_LISTED_TAGS]
    tag_text = ", ".join(f"{k}={v}" for k, v in tags)
    role = "decided" if element.get("decided") else "candidate"
    klass = element.get("class")
    parts = [
        _link(element_url(element), name) + (f" v{escape(str(element['version']))}" if element.get("version") else ""),
        f"<b>{escape(str(klass))}</b> ({role})" if klass else escape(role),
        edit_age_text(element.get("timestamp"), now),
        escape(tag_text) or "no tags",
    ]
    return " · ".join(parts)


def _pair_html(pair: Pair) -> str:
    """The recording (source, id, author, licence, link), then the pair, then the imagery's acquisition date."""
    rec = pair.recording
    source = {RecordingSource.FREESOUND: "Freesound"}.get(rec.source, "recording")
    line = _link(recording_url(rec), f"{source} {rec.source_id}")
    line += f" by {escape(rec.author)}" if rec.author else " (author unknown)"
    line += f" · licence {escape(rec.license)}" if rec.license else " · licence unknown"
    pair_text = f"pair {pair.id} at {pair.lat:.6f}, {pair.lon:.6f}"
    if pair.origin != PairOrigin.ORIGINAL:
        pair_text += f" (offset {pair.direction} {pair.offset_m or 0:.0f} m from pair {pair.parent_pair_id})"
    imagery = f"imagery acquired {pair.image_acquired}" if pair.image_acquired else "imagery acquisition date unknown"
    return f"{line}<br/>{escape(pair_text)} · {escape(imagery)}"


def _evidence_texts(pair: Pair, now: datetime) -> dict[str, str]:
    ev = pair.osm_evidence
    pair_html = _pair_html(pair)
    if ev is None:
        return {"pair": pair_html, "osm": "not pre-labelled (no overlay)", "osm_tags": NO_NOTE}
    edit = f"; last edit {ev.last_edit_at:%Y-%m-%d}" if ev.last_edit_at else ""
    if ev.label:
        osm = escape(f"{ev.label} (confidence {ev.confidence:.2f}{edit}; {model_version_of(ev)})")
    else:
        osm = escape(f"no OSM class matched ({model_version_of(ev)}): choose from the image and the sound")
    if ev.last_edit_at:
        osm += "<br/>deciding element " + edit_age_text(ev.last_edit_at, now)
    items = [
        f"<li>{_element_html(e, now)}</li>" for e in (ev.elements or [])[:MAX_LISTED_ELEMENTS] if isinstance(e, dict)
    ]
    tags = f'<ul style="margin: 0; padding-left: 18px">{"".join(items)}</ul>' if items else NO_NOTE
    return {"pair": pair_html, "osm": osm, "osm_tags": tags}


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


def overlay_url(pair: Pair, media: MediaRoute) -> str:
    """The task's overlay image: its media URL when the file exists, else :data:`NO_OVERLAY`."""
    rel = overlay_relpath(pair)
    if rel is None or not (media.media_dir / rel).is_file():
        return NO_OVERLAY
    return media.url(rel)


def build_task(
    pair: Pair,
    *,
    media: MediaRoute,
    note: str = NO_NOTE,
    predict: bool = True,
    rank: RankSuggestion | None = None,
    preselect: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Label Studio task of a pair: media URLs (the overlay's when its file exists), evidence, the model's
    suggestion and (unless `predict` is off) the OSM prediction then the rank prediction, where there is one of each.

    With ``preselect=False`` (a blind task, for measuring anchoring) the task keeps every evidence text and the
    ``osm_label`` key pull compares verdicts with, but its predictions pre-select nothing: each keeps its model
    version and score with an empty result (:func:`~annotator.labelstudio.config.blind_prediction`), so the task
    holds its place in Label Studio's uncertainty-sampling order. `now` dates the edit ages (default: the clock).
    """
    assert pair.image_path and pair.clip_path
    data: dict[str, Any] = {
        "pair_id": pair.id,
        lsconfig.IMAGE: media.url(pair.image_path),
        lsconfig.OVERLAY: overlay_url(pair, media),
        lsconfig.AUDIO: media.url(pair.clip_path),
        **_evidence_texts(pair, now or datetime.now(UTC)),
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
    if not preselect:
        predictions = [
            lsconfig.blind_prediction(model_version=p["model_version"], score=p["score"]) for p in predictions
        ]
    if predictions:
        task["predictions"] = predictions
    return task
