"""Imagery sources behind one small interface, chosen by the ``--imagery SOURCE`` string (SPEC §5).

``open_source(spec)`` understands:

- an existing directory: an XYZ pyramid ``DIR/{z}/{x}/{y}.png`` (``.jpg``, ``.jpeg``, ``.webp`` detected per tile);
- a local path template containing ``{z}``, ``{x}`` and ``{y}`` (``tiles/{z}/{x}/{y}.jpg``);
- a ``.mbtiles`` file (SQLite, TMS row order, opened read-only);
- an ``http(s)://…/{z}/{x}/{y}…`` URL template (see :mod:`dataset.imagery.http`);
- a GeoTIFF / Cloud-Optimised GeoTIFF in any CRS: a local ``.tif``/``.tiff`` (or any file with a TIFF signature),
  an ``http(s)://…/….tif`` URL read with Range requests, or a GDAL ``/vsi…/`` path (see
  :mod:`dataset.imagery.geotiff`);
- ``wms:`` and a GetMap URL template with ``{bbox}``, ``{width}``, ``{height}`` in EPSG:3857 (see
  :mod:`dataset.imagery.wms`).

Every source is a :class:`dataset.imagery.base.TileSource`; tile pyramids hand out decoded RGB tiles through an
LRU cache, so neighbouring crops share their work, and the GeoTIFF and WMS sources (``crop.FrameSource``) render
each crop's frame themselves. Import, ``imagery fill``, ``imagery crop`` and export's offset images all open their
SOURCE here.
"""

from __future__ import annotations

import sqlite3
import threading
import urllib.parse
from pathlib import Path
from typing import NamedTuple

from annotator.errors import ImageryError, ImagerySourceError
from annotator.vocabulary import ImageryFailure
from dataset.imagery.base import TileSource, format_template, has_xyz_fields
from dataset.imagery.http import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S, DEFAULT_USER_AGENT, UrlTemplateSource
from dataset.imagery.wms import WMS_PREFIX, WmsSource

TIFF_SUFFIXES = (".tif", ".tiff")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders

__all__ = [
    "MBTilesSource",
    "PathTemplateSource",
    "TileSource",
    "UrlTemplateSource",
    "WmsSource",
    "XYZFolderSource",
    "open_source",
]

TILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")


def _zoom_levels(folder: Path) -> list[int]:
    try:
        return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    except OSError:
        return []


class XYZFolderSource(TileSource):
    """A folder ``ROOT/{z}/{x}/{y}.<ext>``; the extension is found per tile (the last one seen is tried first)."""

    def __init__(self, spec: str, root: Path) -> None:
        levels = _zoom_levels(root)
        if not levels:
            raise ImagerySourceError(
                f"imagery folder {root} has no zoom-level subfolders; expected an XYZ tile pyramid "
                f"laid out as {root}/{{z}}/{{x}}/{{y}}.png (or .jpg/.jpeg/.webp)"
            )
        super().__init__(spec, min_zoom=levels[0], max_zoom=levels[-1])
        self.root = root
        self._extensions = list(TILE_EXTENSIONS)

    def read_tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        base = self.root / str(z) / str(x)
        for ext in list(self._extensions):
            path = base / f"{y}{ext}"
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ImageryError(f"cannot read tile {path}: {exc}", reason=ImageryFailure.BAD_TILE) from exc
            if self._extensions[0] != ext:
                self._extensions.remove(ext)
                self._extensions.insert(0, ext)
            return data
        return None


class PathTemplateSource(TileSource):
    """A local path template such as ``/data/tiles/{z}/{x}/{y}.jpg`` (``{-y}`` for TMS row order)."""

    def __init__(self, spec: str) -> None:
        levels: list[int] = []
        head, sep, tail = spec.partition("{z}")
        if sep and tail.startswith(("/", "\\")) and "{" not in head:
            levels = _zoom_levels(Path(head) if head else Path("."))
        if levels:
            super().__init__(spec, min_zoom=levels[0], max_zoom=levels[-1])
        else:
            super().__init__(spec)

    def read_tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        path = Path(format_template(self.spec, z, x, y))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ImageryError(f"cannot read tile {path}: {exc}", reason=ImageryFailure.BAD_TILE) from exc


class MBTilesSource(TileSource):
    """An MBTiles file (SQLite; rows in TMS order, so ``tile_row = 2**z - 1 - y``), opened read-only."""

    def __init__(self, spec: str, path: Path) -> None:
        if not path.is_file():
            raise ImagerySourceError(f"MBTiles file {path} does not exist")
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            meta = dict(self._db.execute("SELECT name, value FROM metadata").fetchall())
            lo = hi = None
            if _int_or(meta.get("minzoom"), None) is None or _int_or(meta.get("maxzoom"), None) is None:
                lo, hi = self._db.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
            else:
                self._db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 0")
        except sqlite3.DatabaseError as exc:
            raise ImagerySourceError(
                f"{path} is not a readable MBTiles file (expected SQLite with tables `metadata` and `tiles`): {exc}"
            ) from exc
        self.format = str(meta.get("format", "")).lower() or None
        if self.format == "pbf":
            raise ImagerySourceError(f"{path} holds vector tiles (format=pbf); imagery needs raster tiles")
        min_zoom = _int_or(meta.get("minzoom"), lo)
        max_zoom = _int_or(meta.get("maxzoom"), hi)
        if min_zoom is None or max_zoom is None:
            raise ImagerySourceError(f"MBTiles file {path} holds no tiles")
        super().__init__(spec, min_zoom=min_zoom, max_zoom=max_zoom)
        self._db_lock = threading.Lock()

    def read_tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        with self._db_lock:
            row = self._db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                (z, x, (1 << z) - 1 - y),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        super().close()
        self._db.close()


def looks_like_tiff(path: str) -> bool:
    """True when the file starts with a TIFF or BigTIFF signature (a GeoTIFF named without .tif)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) in TIFF_MAGIC
    except OSError:
        return False


def _int_or(value: object, fallback: int | None) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return fallback


def open_source(
    spec: str,
    *,
    cache_dir: Path | None = None,
    user_agent: str | None = None,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> TileSource:
    """Open the imagery SOURCE named by ``spec``.

    Args:
        spec: A tile folder, a local ``{z}/{x}/{y}`` path template, an ``.mbtiles`` file, an
            ``http(s)://…/{z}/{x}/{y}…`` URL template, a GeoTIFF/COG (path, ``http(s)://….tif`` or ``/vsi…/``),
            or ``wms:`` and a GetMap URL template.
        cache_dir: Where a URL or WMS source keeps fetched tiles and maps (ignored for local sources).
        user_agent: Overrides the User-Agent of a remote source (it should name you and a contact).
        timeout_s: Socket timeout of a remote source, in seconds.
        max_retries: Retries of a remote source after a 429/5xx/timeout.

    Raises:
        ImagerySourceError: The string names nothing usable; the message says what was expected.
    """
    spec = spec.strip()
    if not spec:
        raise ImagerySourceError("the imagery SOURCE is empty; " + _EXPECTED)
    lowered = spec.lower()
    polite = _Politeness(
        user_agent=DEFAULT_USER_AGENT if user_agent is None else user_agent,
        timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
    )
    if lowered.startswith(WMS_PREFIX):
        return WmsSource(spec, cache_dir=cache_dir, **polite._asdict())
    if lowered.startswith(("http://", "https://")):
        if has_xyz_fields(spec):
            return UrlTemplateSource(spec, cache_dir=cache_dir, **polite._asdict())
        if urllib.parse.urlsplit(spec).path.lower().endswith(TIFF_SUFFIXES):
            return _geotiff(spec, "/vsicurl/" + spec, polite)
        raise ImagerySourceError(
            f"imagery URL {spec.split('?')[0]!r} lacks {{z}}, {{x}} and {{y}} fields and is no .tif/.tiff file; "
            + _EXPECTED
        )
    if spec.startswith("/vsi"):
        return _geotiff(spec, spec, polite)
    if "://" in spec:
        raise ImagerySourceError(f"imagery SOURCE {spec!r} uses an unsupported scheme; " + _EXPECTED)
    if has_xyz_fields(spec):
        return PathTemplateSource(spec)
    path = Path(spec).expanduser()
    if lowered.endswith(".mbtiles"):
        return MBTilesSource(spec, path)
    if path.is_dir():
        return XYZFolderSource(spec, path)
    if path.is_file():
        if lowered.endswith(TIFF_SUFFIXES) or looks_like_tiff(str(path)):
            return _geotiff(spec, str(path), polite)
        raise ImagerySourceError(
            f"imagery SOURCE {spec!r} is a file but not an .mbtiles file or a GeoTIFF; " + _EXPECTED
        )
    raise ImagerySourceError(f"imagery SOURCE {spec!r} does not exist; " + _EXPECTED)


class _Politeness(NamedTuple):
    """What every remote source is given: who we are, how long to wait, how often to retry."""

    user_agent: str
    timeout_s: float
    max_retries: int


def _geotiff(spec: str, location: str, polite: _Politeness) -> TileSource:
    # rasterio (GDAL) is imported only when a GeoTIFF is asked for: tile-only runs never load it.
    from dataset.imagery.geotiff import GeoTiffSource  # noqa: PLC0415

    return GeoTiffSource(spec, location, **polite._asdict())


_EXPECTED = (
    "expected a tile folder (DIR/{z}/{x}/{y}.png), a path template with {z}, {x} and {y}, "
    "an .mbtiles file, an http(s):// URL template with {z}/{x}/{y}, a GeoTIFF/COG (path or http(s) URL "
    "ending .tif), or wms: followed by a GetMap URL with {bbox}, {width} and {height}"
)
