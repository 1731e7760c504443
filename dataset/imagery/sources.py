"""Tile sources behind one small interface, chosen by the ``--imagery SOURCE`` string (SPEC §5).

``open_source(spec)`` understands:

- an existing directory: an XYZ pyramid ``DIR/{z}/{x}/{y}.png`` (``.jpg``, ``.jpeg``, ``.webp`` detected per tile);
- a local path template containing ``{z}``, ``{x}`` and ``{y}`` (``tiles/{z}/{x}/{y}.jpg``);
- a ``.mbtiles`` file (SQLite, TMS row order, opened read-only);
- an ``http(s)://…/{z}/{x}/{y}…`` URL template (see :mod:`dataset.imagery.http`).

Every source hands out decoded RGB tiles through :meth:`TileSource.tile`, which keeps an LRU cache of decoded tiles
so neighbouring crops share their work, and counts what it decoded (the benchmark reports it).
"""

from __future__ import annotations

import io
import re
import sqlite3
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from PIL import Image, UnidentifiedImageError

from annotator.errors import ImageryError, ImagerySourceError

TileKey = tuple[int, int, int]  # (z, x, y), XYZ numbering
TILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
#: Zoom range assumed when a source cannot tell (templates whose folders cannot be listed, URLs).
DEFAULT_MIN_ZOOM = 0
DEFAULT_MAX_ZOOM = 22
DECODED_CACHE_TILES = 256  # ~50 MB of 256-px RGB tiles: covers several neighbouring 512-px crops


class TileSource:
    """A pyramid of XYZ tiles. Subclasses implement :meth:`read_tile_bytes` (and may batch :meth:`read_many`).

    Attributes:
        spec: The SOURCE string as the user gave it (stored as the image's provenance).
        min_zoom: Coarsest zoom level the source holds.
        max_zoom: Finest zoom level the source holds.
        tiles_decoded: How many tiles were decoded with Pillow so far (cache hits excluded).
    """

    def __init__(self, spec: str, *, min_zoom: int = DEFAULT_MIN_ZOOM, max_zoom: int = DEFAULT_MAX_ZOOM) -> None:
        self.spec = spec
        self.min_zoom = min_zoom
        self.max_zoom = max_zoom
        self.tiles_decoded = 0
        self.tile_size: int | None = None  # pixel size of the source's tiles, known after the first decode
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
        try:
            with Image.open(io.BytesIO(data)) as raw:
                image = raw.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            z, x, y = key
            raise ImageryError(f"tile {z}/{x}/{y} at {self.describe()} is not a readable image: {exc}") from exc
        self.tiles_decoded += 1
        if image.width != image.height:
            z, x, y = key
            raise ImageryError(f"tile {z}/{x}/{y} at {self.describe()} is {image.width}×{image.height}, not square")
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
                raise ImageryError(f"cannot read tile {path}: {exc}") from exc
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
            raise ImageryError(f"cannot read tile {path}: {exc}") from exc


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


_FIELD = re.compile(r"\{(z|x|y|-y|s)\}")


def format_template(template: str, z: int, x: int, y: int, subdomain: str = "") -> str:
    """Fill ``{z}``, ``{x}``, ``{y}``, ``{-y}`` (TMS row) and ``{s}`` (subdomain) in a tile template."""
    values = {"z": str(z), "x": str(x), "y": str(y), "-y": str((1 << z) - 1 - y), "s": subdomain}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def has_xyz_fields(template: str) -> bool:
    """True when the template names the zoom, the column and the row."""
    return "{z}" in template and "{x}" in template and ("{y}" in template or "{-y}" in template)


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
        from dataset.imagery.http import UrlTemplateSource

        if not has_xyz_fields(spec):
            raise ImagerySourceError(f"imagery URL {spec!r} lacks {{z}}, {{x}} and {{y}} fields; " + _EXPECTED)
        options = {"user_agent": user_agent, "timeout_s": timeout_s, "max_retries": max_retries}
        return UrlTemplateSource(spec, cache_dir=cache_dir, **{k: v for k, v in options.items() if v is not None})
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
