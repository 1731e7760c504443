"""Before `ls push` creates a task: do its media reach a browser? (issue 14, item 6)

The image, audio and overlay URLs of one task of the first batch are fetched as the annotator's browser fetches
them: a ``/data/local-files/?d=…`` URL from the Label Studio server itself, authenticated as the pushing user (the
API key's header stands in for the browser's session cookie: Label Studio authenticates both in the same
middleware and serves the file through the same view, which checks the project's local-files storages), and a
``--media-base-url`` URL from that server, without Label Studio's credentials. Each must answer 200 with exactly
the bytes of the file in the media dir. A server whose local-files root is not the one the URLs were made for
answers 404 — the trap of a root that is a parent of the media dir — and the push stops before creating anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.errors import LabelStudioUnavailable, redact_url
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.overlays import overlay_relpath
from annotator.store.models import Pair

if TYPE_CHECKING:
    from annotator.labelstudio.client import Connection
    from annotator.labelstudio.tasks import MediaRoute

#: Seconds one media request may take (a 10 s WAV is ~1 MB).
FETCH_TIMEOUT_S = 60.0


class MediaNotServed(LabelStudioUnavailable):
    """A task's media URL does not give the browser the media file: no task was created."""


@dataclass(frozen=True)
class MediaSample:
    """One media file of a task and the URL the task gives the browser for it."""

    what: str  # "image", "audio", "overlay"
    url: str  # as in the task data: /data/local-files/?d=… or an absolute URL under --media-base-url
    path: Path  # the file in the media dir


@dataclass(frozen=True)
class MediaCheck:
    """What the check fetched (for the push report)."""

    fetched: tuple[str, ...] = ()  # the kinds checked, e.g. ("image", "audio", "overlay")
    through: str = ""  # "Label Studio" or the media base URL


def check_media(conn: Connection, media: MediaRoute, samples: list[MediaSample]) -> MediaCheck:
    """Fetch every sample's URL as a browser would and compare the bytes with its file.

    Raises:
        MediaNotServed: a URL does not answer 200 with the file's bytes (one sentence saying what to set).
    """
    import httpx

    if not samples:
        return MediaCheck()
    through = redact_url(media.base_url) if media.base_url else "Label Studio"
    headers = {} if media.base_url else _auth_headers(conn)
    with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=True) as http:
        for sample in samples:
            url = sample.url if media.base_url else conn.url + sample.url
            try:
                answer = http.get(url, headers=headers)
            except (httpx.TransportError, httpx.InvalidURL):
                raise _not_served(conn, media, sample, "did not answer") from None
            if answer.status_code != 200:
                raise _not_served(conn, media, sample, f"answered HTTP {answer.status_code}")
            if answer.content != sample.path.read_bytes():
                raise _not_served(conn, media, sample, "answered with other bytes than the file")
    return MediaCheck(fetched=tuple(s.what for s in samples), through=through)


def _auth_headers(conn: Connection) -> dict[str, str]:
    """The Authorization header the SDK sends (a legacy token, or the access token of a personal access token)."""
    headers = conn.client._client_wrapper.get_headers()
    return {k: v for k, v in headers.items() if k.lower() == "authorization"}


def _not_served(conn: Connection, media: MediaRoute, sample: MediaSample, what_happened: str) -> MediaNotServed:
    """The one sentence: what failed, and the setting to fix (the key never appears: no header is quoted)."""
    if media.base_url:
        return MediaNotServed(
            f"no task was created: {redact_url(sample.url)} (the {sample.what} of {sample.path.name}) "
            f"{what_happened}; --media-base-url must serve the media dir {media.media_dir} as it is"
        )
    if "HTTP 403" in what_happened:  # serving is off (or the key may not read the project's files)
        return MediaNotServed(
            f"no task was created: Label Studio at {conn.shown_url} {what_happened} for the {sample.what} "
            f"{sample.url}; start it with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
            f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT the folder given to --ls-files-root ({media.files_root})"
        )
    return MediaNotServed(
        f"no task was created: Label Studio at {conn.shown_url} {what_happened} for the {sample.what} "
        f"{sample.url}, so its local-files root is not {media.files_root}; pass the server's "
        f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT as --ls-files-root (or set that variable for annotator too) — "
        f"the two must name the same folder, the media dir {media.media_dir} or a parent of it"
    )


class MediaGate:
    """Checks the media of the first task about to be created, once per push (:mod:`media_check`)."""

    def __init__(self, conn: Connection, media: MediaRoute, enabled: bool = True) -> None:
        self.conn, self.media, self.enabled = conn, media, enabled
        self.result = MediaCheck()

    def check(self, pair: Pair, task: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.enabled = False
        data = task["data"]
        samples = [
            MediaSample("image", str(data[lsconfig.IMAGE]), self.media.media_dir / str(pair.image_path)),
            MediaSample("audio", str(data[lsconfig.AUDIO]), self.media.media_dir / str(pair.clip_path)),
        ]
        overlay = overlay_relpath(pair)
        if overlay is not None and data.get(lsconfig.OVERLAY) == self.media.url(overlay):
            samples.append(MediaSample("overlay", self.media.url(overlay), self.media.media_dir / overlay))
        self.result = check_media(self.conn, self.media, samples)
