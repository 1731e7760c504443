"""Errors a user can act on. Raised where the third-party error is caught; mapped to exit codes in the CLI."""

from __future__ import annotations

from typing import ClassVar

from annotator.vocabulary import ImageryFailure


class AnnotatorError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class StoreError(AnnotatorError):
    """The store cannot be opened or is not at the expected schema."""


class StoreNotInitialised(StoreError):
    """The database has no annotator schema yet; run `annotator init`."""


class BadManifest(AnnotatorError):
    """The manifest as a whole cannot be read (format, missing columns)."""

    exit_code = 2


class BadManifestRow(AnnotatorError):
    """One manifest row is unusable; carries a machine-readable reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BadAudio(BadManifestRow):
    """An audio file cannot be used (missing, empty, corrupt, not audio, too short)."""


class BadImage(BadManifestRow):
    """An image file cannot be used."""


class ImageryError(AnnotatorError):
    """An imagery source cannot give an image for a point (missing tiles, bad source, out of range).

    Attributes:
        reason: Why, set where the error is raised; a failed pair stores it before the message.
    """

    default_reason: ClassVar[ImageryFailure] = ImageryFailure.IMAGERY_ERROR

    def __init__(self, message: str, *, reason: ImageryFailure | None = None) -> None:
        super().__init__(message)
        self.reason: ImageryFailure = self.default_reason if reason is None else reason


class ImagerySourceError(ImageryError):
    """The imagery SOURCE string or file itself is unusable."""

    exit_code = 2
    default_reason = ImageryFailure.SOURCE_UNUSABLE


class OverpassRefused(AnnotatorError):
    """The Overpass server refused or kept failing; the affected pairs are left for the next run."""


class OsmFileError(AnnotatorError):
    """An OSM extract cannot be read."""

    exit_code = 2


class LabelStudioUnavailable(AnnotatorError):
    """Label Studio cannot be reached at the given URL."""


class LabelStudioAuthError(AnnotatorError):
    """Label Studio rejected the API key."""


class LabelStudioProjectGone(AnnotatorError):
    """The Label Studio project the store points at no longer exists."""


class ExportError(AnnotatorError):
    """An export cannot be written (existing output, nothing to export, bad parameters)."""


class DatasetError(AnnotatorError):
    """A dataset folder cannot be read for training or evaluation."""


class TrainingError(AnnotatorError):
    """Training or evaluation cannot run as asked (device, checkpoint, parameters)."""


def redact_url(url: str) -> str:
    """`url` with any password (``user:pw@host``) replaced by ``***``, for messages and logs.

    >>> redact_url("postgresql+psycopg://curator:s3cret@db.example.org/annotator")
    'postgresql+psycopg://curator:***@db.example.org/annotator'
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
