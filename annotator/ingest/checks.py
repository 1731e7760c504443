"""Row checks that need no file: coordinates and paths that must stay inside their root."""

from __future__ import annotations

import math
import os
from pathlib import Path

from annotator.errors import BadManifestRow
from annotator.vocabulary import RejectReason


def parse_coordinates(lat_text: str | None, lon_text: str | None) -> tuple[float, float]:
    """Parse WGS84 latitude and longitude in decimal degrees.

    Raises:
        BadManifestRow: ``missing_coordinates`` (either is empty), ``bad_coordinates`` (not a finite number) or
            ``coordinates_out_of_range`` (|lat| > 90 or |lon| > 180).
    """
    if lat_text is None or lon_text is None:
        missing = [name for name, text in (("lat", lat_text), ("lon", lon_text)) if text is None]
        raise BadManifestRow(RejectReason.MISSING_COORDINATES, f"no {' and '.join(missing)} given")
    values: list[float] = []
    for name, text in (("lat", lat_text), ("lon", lon_text)):
        try:
            value = float(text)
        except ValueError:
            raise BadManifestRow(RejectReason.BAD_COORDINATES, f"{name} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise BadManifestRow(RejectReason.BAD_COORDINATES, f"{name} {text!r} is not a finite number")
        values.append(value)
    lat, lon = values
    if abs(lat) > 90:
        raise BadManifestRow(RejectReason.COORDINATES_OUT_OF_RANGE, f"lat {lat} is outside -90..90")
    if abs(lon) > 180:
        raise BadManifestRow(RejectReason.COORDINATES_OUT_OF_RANGE, f"lon {lon} is outside -180..180")
    return lat, lon


def resolve_in_root(root: Path, value: str, what: str = "path") -> tuple[Path, str]:
    """Resolve a manifest path against `root` and refuse one that leaves it.

    The check is lexical (``..`` and absolute paths are normalised, symbolic links are followed later as
    usual), so a root may hold links to files stored elsewhere.

    Returns:
        (absolute path, path relative to the root with ``/`` separators — what the store keeps).

    Raises:
        BadManifestRow: ``bad_field`` (a NUL byte, which no file name can hold) or ``path_escapes_root``.
    """
    if "\x00" in value:
        raise BadManifestRow(RejectReason.BAD_FIELD, f"{what} path {value!r} contains a NUL byte")
    root_abs = os.path.abspath(root)
    candidate = os.path.normpath(value if os.path.isabs(value) else os.path.join(root_abs, value))
    if os.path.commonpath([root_abs, candidate]) != root_abs or candidate == root_abs:
        raise BadManifestRow(RejectReason.PATH_ESCAPES_ROOT, f"{what} {value!r} is outside {root_abs}")
    return Path(candidate), Path(os.path.relpath(candidate, root_abs)).as_posix()
