"""Tile sources behind one small interface, chosen by the ``--imagery SOURCE`` string (SPEC §5).

``open_source(spec)`` understands:

- an existing directory: an XYZ pyramid ``DIR/{z}/{x}/{y}.png`` (``.jpg``, ``.jpeg``, ``.webp`` detected per tile);
- a local path template containing ``{z}``, ``{x}`` and ``{y}`` (``tiles/{z}/{x}/{y}.jpg``);
- a ``.mbtiles`` file (SQLite, TMS row order, opened read-only);
- an ``http(s)://…/{z}/{x}/{y}…`` URL template (see :mod:`dataset.imagery.http`).

Every source is a :class:`dataset.imagery.base.TileSource`: decoded RGB tiles through an LRU cache, so
neighbouring crops share their work.
"""

from __future__ import annotations

import sqlite3
import threading
import urllib.parse
from pathlib import Path

from annotator.errors import ImageryError, ImagerySourceError
from annotator.vocabulary import ImageryFailure
from dataset.imagery.base import TileSource, format_template, has_xyz_fields
from dataset.imagery.http import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S, DEFAULT_USER_AGENT, UrlTemplateSource

__all__ = [
    "MBTilesSource",
    "PathTemplateSource",
    "TileSource",
    "UrlTemplateSource",
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
        spec: A tile folder, a local ``{z}/{x}/{y}`` path template, an ``.mbtiles`` file or an
            ``http(s)://…/{z}/{x}/{y}…`` URL template.
        cache_dir: Where a URL source keeps fetched tiles (ignored for local sources).
        user_agent: Overrides the URL source's User-Agent (it should name you and a contact).
        timeout_s: Socket timeout of a URL source, in seconds.
        max_retries: Retries of a URL source after a 429/5xx/timeout.

    Raises:
        ImagerySourceError: The string names nothing usable; the message says what was expected.
    """
    spec = spec.strip()
    if not spec:
        raise ImagerySourceError("the imagery SOURCE is empty; " + _EXPECTED)
    lowered = spec.lower()
    if lowered.startswith(("http://", "https://")):
        if not has_xyz_fields(spec):
            raise ImagerySourceError(f"imagery URL {spec!r} lacks {{z}}, {{x}} and {{y}} fields; " + _EXPECTED)
        return UrlTemplateSource(
            spec,
            cache_dir=cache_dir,
            user_agent=DEFAULT_USER_AGENT if user_agent is None else user_agent,
            timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
            max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        )
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
        raise ImagerySourceError(f"imagery SOURCE {spec!r} is a file but not an .mbtiles file; " + _EXPECTED)
    raise ImagerySourceError(f"imagery SOURCE {spec!r} does not exist; " + _EXPECTED)


_EXPECTED = (
    "expected a tile folder (DIR/{z}/{x}/{y}.png), a path template with {z}, {x} and {y}, "
    "an .mbtiles file, or an http(s):// URL template with {z}/{x}/{y}"
)
