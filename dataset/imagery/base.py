"""What every tile source shares: the :class:`TileSource` base with its decoded-tile cache, and tile templates.

The concrete sources live in :mod:`dataset.imagery.sources` (local folders, path templates, MBTiles) and
:mod:`dataset.imagery.http` (URL templates); both build on this module and nothing else of the package, so
neither imports the other.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType

from PIL import Image, UnidentifiedImageError

from annotator.errors import ImageryError
from annotator.vocabulary import ImageryFailure

TileKey = tuple[int, int, int]  # (z, x, y), XYZ numbering
#: Zoom range assumed when a source cannot tell (templates whose folders cannot be listed, URLs).
DEFAULT_MIN_ZOOM = 0
DEFAULT_MAX_ZOOM = 22
DECODED_CACHE_TILES = 256  # ~50 MB of 256-px RGB tiles: covers several neighbouring 512-px crops


class TileSource:
    """A pyramid of XYZ tiles. Subclasses implement :meth:`read_tile_bytes` (and may batch :meth:`read_many`).

    Every source hands out decoded RGB tiles through :meth:`tiles`, which keeps an LRU cache of decoded tiles so
    neighbouring crops share their work, and counts what it decoded (the benchmark reports it).

    Attributes:
        spec: The SOURCE string as the user gave it (stored as the image's provenance).
        min_zoom: Coarsest zoom level the source holds.
        max_zoom: Finest zoom level the source holds.
        tiles_decoded: How many tiles were decoded with Pillow so far (cache hits excluded).
        tile_size: Pixel size of the source's tiles, known after the first decode.
    """

    def __init__(self, spec: str, *, min_zoom: int = DEFAULT_MIN_ZOOM, max_zoom: int = DEFAULT_MAX_ZOOM) -> None:
        self.spec = spec
        self.min_zoom = min_zoom
        self.max_zoom = max_zoom
        self.tiles_decoded = 0
        self.tile_size: int | None = None
        self._decoded: OrderedDict[TileKey, Image.Image | None] = OrderedDict()
        self._lock = threading.Lock()

    # -- what subclasses provide -------------------------------------------------------------------------------
    def read_tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        """The encoded tile, or None when the source has no such tile."""
        raise NotImplementedError

    def read_many(self, keys: Iterable[TileKey]) -> dict[TileKey, bytes | None]:
        """Encoded tiles for several keys (sequential here; the URL source fetches a few at a time)."""
        return {key: self.read_tile_bytes(*key) for key in keys}

    def describe(self) -> str:
        """The source as shown in messages."""
        return self.spec

    # -- shared behaviour --------------------------------------------------------------------------------------
    def tiles(self, keys: Iterable[TileKey]) -> dict[TileKey, Image.Image | None]:
        """Decoded RGB tiles (None for a tile the source lacks), from the LRU cache where possible."""
        wanted = list(dict.fromkeys(keys))
        out: dict[TileKey, Image.Image | None] = {}
        with self._lock:
            for key in wanted:
                if key in self._decoded:
                    self._decoded.move_to_end(key)
                    out[key] = self._decoded[key]
        missing = [key for key in wanted if key not in out]
        if missing:
            for key, data in self.read_many(missing).items():
                out[key] = None if data is None else self._decode(key, data)
            with self._lock:
                for key in missing:
                    self._decoded[key] = out[key]
                while len(self._decoded) > DECODED_CACHE_TILES:
                    self._decoded.popitem(last=False)
        return out

    def tile(self, z: int, x: int, y: int) -> Image.Image | None:
        """One decoded RGB tile, or None when the source has none at (z, x, y)."""
        return self.tiles([(z, x, y)])[(z, x, y)]

    def _decode(self, key: TileKey, data: bytes) -> Image.Image:
        z, x, y = key
        try:
            with Image.open(io.BytesIO(data)) as raw:
                image = raw.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ImageryError(
                f"tile {z}/{x}/{y} at {self.describe()} is not a readable image: {exc}", reason=ImageryFailure.BAD_TILE
            ) from exc
        self.tiles_decoded += 1
        if image.width != image.height:
            raise ImageryError(
                f"tile {z}/{x}/{y} at {self.describe()} is {image.width}×{image.height}, not square",
                reason=ImageryFailure.BAD_TILE,
            )
        if self.tile_size is None:
            self.tile_size = image.width
        elif image.width != self.tile_size:
            image = image.resize((self.tile_size, self.tile_size), Image.Resampling.LANCZOS)
        return image

    def close(self) -> None:
        """Release files, connections and threads."""
        with self._lock:
            self._decoded.clear()

    def __enter__(self) -> TileSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r}, zoom {self.min_zoom}–{self.max_zoom})"


_FIELD = re.compile(r"\{(z|x|y|-y|s)\}")


def format_template(template: str, z: int, x: int, y: int, subdomain: str = "") -> str:
    """Fill ``{z}``, ``{x}``, ``{y}``, ``{-y}`` (TMS row) and ``{s}`` (subdomain) in a tile template."""
    values = {"z": str(z), "x": str(x), "y": str(y), "-y": str((1 << z) - 1 - y), "s": subdomain}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def has_xyz_fields(template: str) -> bool:
    """True when the template names the zoom, the column and the row."""
    return "{z}" in template and "{x}" in template and ("{y}" in template or "{-y}" in template)


def parse_acquisition_date(value: str | None) -> str | None:
    """An acquisition date as ISO 8601 (``2021-06-15`` or ``2021-06-15T10:30:00``), or None when there is none.

    Understands TIFF's ``YYYY:MM:DD HH:MM:SS``, ISO dates and date-times, and keeps another value that names a
    year (a WMS ``TIME`` range such as ``2020-05-01/2020-08-31``) as given, cut to 32 characters.
    """
    if value is None:
        return None
    text = value.strip()
    match = re.fullmatch(r"(\d{4})[:\-/](\d{2})[:\-/](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?\S*)?", text)
    if match:
        year, month, day, hour, minute, second = match.groups()
        try:
            when = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        except ValueError:
            return None  # 0000:00:00 00:00:00 and other placeholders
        return when.date().isoformat() if hour is None else when.isoformat()
    if re.search(r"\b(1[89]|2\d)\d{2}\b", text):
        return text[:32]
    return None
