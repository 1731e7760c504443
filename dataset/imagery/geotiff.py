"""Imagery from a GeoTIFF or Cloud-Optimised GeoTIFF in any CRS, local or over HTTP(S), warped into each crop's frame.

National mapping agencies publish orthophotos as (Cloud-Optimised) GeoTIFFs in their own projection (ETRS-TM35FIN,
UTM, …). A crop reads only the window of the raster under its frame (``geo.mercator_frame``: the pixel grid the
tile path cuts, in Web-Mercator metres), decimated to about the crop's resolution through the file's overviews when
the raster is finer, and resamples it into that grid — so a GeoTIFF crop and a tile crop of the same ground agree to
a fraction of a pixel. Over a crop's 256 m the change of projection is affine to a few thousandths of a pixel, so
the resampling is one bicubic affine warp (Pillow, a few milliseconds) whenever a fitted affine map is checked to be
within 0.05 px of the true projection, and GDAL's Lanczos warper (``rasterio.warp.reproject``, ~10× slower)
otherwise. Over HTTP(S) the file is read through GDAL's ``/vsicurl/`` with Range requests: a COG costs a few
kilobytes of headers and the tiles under each crop, never the whole file.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.warp import reproject, transform
from rasterio.windows import Window

from annotator.errors import ImageryError, ImagerySourceError
from annotator.vocabulary import ImageryFailure
from dataset.imagery.base import parse_acquisition_date
from dataset.imagery.crop import Crop, FrameSource, equivalent_zoom
from dataset.imagery.geo import footprint_bbox, mercator_frame

WEB_MERCATOR = CRS.from_epsg(3857)  # parsed once: parsing "EPSG:3857" per call costs milliseconds
#: Lanczos reaches 3 pixels either side: the window read is padded so the crop's edge pixels see full support.
KERNEL_RADIUS_PX = 3
#: Points per side of the grid on which the affine stand-in for the projection change is checked.
FIT_POINTS = 5
#: The affine stand-in is used when it is this close to the true projection everywhere on the grid (read pixels).
AFFINE_TOLERANCE_PX = 0.05
#: Points per frame edge transformed into the raster's CRS: edges curve under reprojection.
EDGE_POINTS = 9
#: Long side of the overview read once to find the contrast stretch of a raster that is not 8-bit.
STRETCH_SAMPLE_PX = 512
#: Metadata items that carry the acquisition date, most specific first (compared case-insensitively).
DATE_ITEMS = ("ACQUISITIONDATE", "ACQUISITION_DATE", "ACQUISITION_DATETIME", "ACQUISITIONDATETIME", "TIFFTAG_DATETIME")


def gdal_http_options(user_agent: str, timeout_s: float, max_retries: int) -> dict[str, Any]:
    """GDAL configuration for ``/vsicurl/``: the same politeness as the tile client (User-Agent, timeout, retries)."""
    return {
        "GDAL_HTTP_USERAGENT": user_agent,
        "GDAL_HTTP_TIMEOUT": max(1, math.ceil(timeout_s)),
        "GDAL_HTTP_CONNECTTIMEOUT": max(1, math.ceil(timeout_s)),
        "GDAL_HTTP_MAX_RETRY": max_retries,
        "GDAL_HTTP_RETRY_DELAY": 1,
        # A COG is one file: never list its "directory" looking for sidecar files (one request each).
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_USE_HEAD": "YES",
    }


class GeoTiffSource(FrameSource):
    """A georeferenced raster (GeoTIFF, COG, anything GDAL opens) as an imagery source.

    Attributes:
        location: What GDAL opens (a path, or ``/vsicurl/URL``).
        acquired: The acquisition date the file states (ISO 8601), or None.
        windows_read: Windows read so far (one per crop).
        gdal_warps: Crops warped by GDAL because no affine map fitted the projection change closely enough.
    """

    def __init__(
        self,
        spec: str,
        location: str,
        *,
        user_agent: str,
        timeout_s: float,
        max_retries: int,
    ) -> None:
        super().__init__(spec)
        self.location = location
        self.windows_read = 0
        self.gdal_warps = 0
        self._options = gdal_http_options(user_agent, timeout_s, max_retries)
        self._lock = threading.Lock()
        with rasterio.Env(**self._options):
            try:
                with warnings.catch_warnings():  # a TIFF without georeferencing gets the clear error below instead
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    self._ds = rasterio.open(location)
            except RasterioError as exc:
                raise ImagerySourceError(f"cannot open the GeoTIFF {self.describe()}: {_first_line(exc)}") from None
            try:
                self._check_georeferencing()
                self._bands, self._palette = self._choose_bands()
                self._stretch = self._contrast_stretch()
            except BaseException:
                self._ds.close()
                raise
        self._has_mask = any(MaskFlags.all_valid not in flags for flags in self._ds.mask_flag_enums)
        self.acquired = self._acquisition_date()

    def describe(self) -> str:
        return self.spec.split("?")[0]  # never echo query strings: signed URLs carry their keys there

    # -- opening -------------------------------------------------------------------------------------------------
    def _check_georeferencing(self) -> None:
        ds = self._ds
        if ds.crs is None:
            raise ImagerySourceError(
                f"the GeoTIFF {self.describe()} has no coordinate reference system; imagery needs a georeferenced "
                "raster (set one with `gdal_edit.py -a_srs EPSG:…`)"
            )
        if ds.transform.is_identity:
            raise ImagerySourceError(
                f"the GeoTIFF {self.describe()} has no geotransform (ground control points alone are not read); "
                "warp it first with `gdalwarp`"
            )

    def _choose_bands(self) -> tuple[list[int], np.ndarray | None]:
        """The band indexes that make red, green, blue, and a colour table for a paletted single band."""
        ds = self._ds
        interp = list(ds.colorinterp)
        rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if all(c in interp for c in rgb):
            return [interp.index(c) + 1 for c in rgb], None
        if interp and interp[0] == ColorInterp.palette:
            table = np.zeros((256, 3), dtype=np.uint8)
            for index, colour in ds.colormap(1).items():
                if 0 <= index < 256:
                    table[index] = colour[:3]
            return [1], table
        if ds.count >= 3:
            return [1, 2, 3], None
        return [1, 1, 1], None  # grey (with or without alpha)

    def _contrast_stretch(self) -> list[tuple[float, float]] | None:
        """Per band (2nd, 98th) percentile of a raster that is not 8-bit, from one small overview read."""
        ds = self._ds
        if self._palette is not None or all(ds.dtypes[i - 1] == "uint8" for i in self._bands):
            return None
        scale = max(1.0, max(ds.width, ds.height) / STRETCH_SAMPLE_PX)
        shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        data = ds.read(self._bands, out_shape=(len(self._bands), *shape), resampling=Resampling.nearest)
        valid = ds.read_masks(1, out_shape=shape, resampling=Resampling.nearest) > 0
        stretch = []
        for band in data.astype(np.float64):
            values = band[valid] if valid.any() else band.ravel()
            lo, hi = (float(v) for v in np.percentile(values, [2, 98]))
            stretch.append((lo, hi if hi > lo else lo + 1.0))
        return stretch

    def _acquisition_date(self) -> str | None:
        items: dict[str, str] = {}
        for tags in (self._ds.tags(), self._ds.tags(1)):
            for key, value in tags.items():
                items.setdefault(key.upper(), value)
        for name in DATE_ITEMS:
            date = parse_acquisition_date(items.get(name))
            if date is not None:
                return date
        return None

    # -- cutting ------------------------------------------------------------------------------------------------
    def plan(self, lat: float, lon: float, size_px: int, resolution_m: float) -> tuple[Window, tuple[int, int], float]:
        """The raster window under the crop's frame, the shape to read it at, and source pixels per crop pixel.

        The window is padded for the resampling kernel and clipped to the raster; a raster finer than the crop is
        read decimated to the crop's resolution (box-averaged by GDAL from the overview nearest it), so the warp
        that follows resamples at about 1:1.

        Raises:
            ImageryError: The frame reaches beyond the raster (``out_of_range``).
        """
        ds = self._ds
        west, south, east, north = mercator_frame(lat, lon, size_px, resolution_m)
        steps = np.linspace(0.0, 1.0, EDGE_POINTS)
        xs = np.concatenate(
            [
                west + (east - west) * steps,
                np.full(EDGE_POINTS, east),
                east - (east - west) * steps,
                np.full(EDGE_POINTS, west),
            ]
        )
        ys = np.concatenate(
            [
                np.full(EDGE_POINTS, north),
                north - (north - south) * steps,
                np.full(EDGE_POINTS, south),
                south + (north - south) * steps,
            ]
        )
        src_x, src_y = transform(WEB_MERCATOR, ds.crs, xs.tolist(), ys.tolist())
        cols, rows = ~ds.transform @ (np.asarray(src_x), np.asarray(src_y))
        cols, rows = np.asarray(cols), np.asarray(rows)
        if not (np.isfinite(cols).all() and np.isfinite(rows).all()):
            raise ImageryError(
                f"({lat:.6f}, {lon:.6f}) cannot be projected into the CRS of {self.describe()}",
                reason=ImageryFailure.OUT_OF_RANGE,
            )
        c0, c1, r0, r1 = cols.min(), cols.max(), rows.min(), rows.max()
        eps = 1e-6
        if c0 < -eps or r0 < -eps or c1 > ds.width + eps or r1 > ds.height + eps:
            inside = c1 > 0 and r1 > 0 and c0 < ds.width and r0 < ds.height
            where = "reaches beyond the edge of" if inside else "lies outside"
            raise ImageryError(
                f"the {size_px * resolution_m:g} m crop at ({lat:.6f}, {lon:.6f}) {where} the raster {self.describe()}",
                reason=ImageryFailure.OUT_OF_RANGE,
            )
        # Source pixels per crop pixel along the frame's top edge (rotation-free, unlike the window's size).
        top = np.hypot(cols[EDGE_POINTS - 1] - cols[0], rows[EDGE_POINTS - 1] - rows[0])
        ratio = float(top) / size_px
        factor = max(1.0, ratio)
        pad = math.ceil(KERNEL_RADIUS_PX * factor) + 1
        col0, row0 = max(0, math.floor(c0) - pad), max(0, math.floor(r0) - pad)
        col1, row1 = min(ds.width, math.ceil(c1) + pad), min(ds.height, math.ceil(r1) + pad)
        window = Window(col0, row0, col1 - col0, row1 - row0)
        shape = (max(1, math.ceil((row1 - row0) / factor)), max(1, math.ceil((col1 - col0) / factor)))
        return window, shape, ratio

    def read_window(self, window: Window, shape: tuple[int, int]) -> np.ndarray:
        """The RGB bands of ``window`` read at ``shape`` (rows, cols) as ``(3, rows, cols)`` uint8: a paletted
        raster's colour table applied, a raster that is not 8-bit stretched by its 2–98 % range."""
        resampling = Resampling.nearest if self._palette is not None or shape[1] >= window.width else Resampling.average
        with rasterio.Env(**self._options):
            data = self._ds.read(
                self._bands, window=window, out_shape=(len(self._bands), *shape), resampling=resampling
            )
        if self._palette is not None:
            return np.moveaxis(self._palette[data[0]], -1, 0)
        if self._stretch is not None:
            scaled = np.empty(data.shape, dtype=np.float32)
            for out, band, (lo, hi) in zip(scaled, data, self._stretch, strict=True):
                out[...] = (band.astype(np.float32) - lo) * (255.0 / (hi - lo))
            return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.asarray(data, dtype=np.uint8)

    def crop(self, lat: float, lon: float, *, size_px: int, resolution_m: float) -> Crop:
        with self._lock:
            window, shape, ratio = self.plan(lat, lon, size_px, resolution_m)
            try:
                data = self.read_window(window, shape)
                if self._has_mask:
                    self._check_coverage(lat, lon, window, shape)
            except RasterioError as exc:
                remote = self.location.startswith("/vsi")
                raise ImageryError(
                    f"cannot read the window at ({lat:.6f}, {lon:.6f}) from {self.describe()}: {_first_line(exc)}",
                    reason=ImageryFailure.FETCH_FAILED if remote else ImageryFailure.BAD_TILE,
                ) from None
            self.windows_read += 1
            image = self._warp(data, window, shape, lat, lon, size_px, resolution_m)
        native = resolution_m / ratio
        return Crop(
            image=image,
            footprint=footprint_bbox(lat, lon, size_px, resolution_m),
            zoom=equivalent_zoom(lat, native),
            resolution_m=resolution_m,
            native_resolution_m=native,
            acquired=self.acquired,
        )

    def _check_coverage(self, lat: float, lon: float, window: Window, shape: tuple[int, int]) -> None:
        """A crop that touches the raster's no-data (a mosaic's gap, its alpha) has no image, as a missing tile."""
        with rasterio.Env(**self._options):
            masks = self._ds.read_masks(
                window=window, out_shape=(self._ds.count, *shape), resampling=Resampling.nearest
            )
        if (masks[sorted(set(b - 1 for b in self._bands))] == 0).any():
            raise ImageryError(
                f"the raster {self.describe()} has no data under the crop at ({lat:.6f}, {lon:.6f})",
                reason=ImageryFailure.TILE_MISSING,
            )

    def _warp(
        self,
        data: np.ndarray,
        window: Window,
        shape: tuple[int, int],
        lat: float,
        lon: float,
        size_px: int,
        resolution_m: float,
    ) -> Image.Image:
        """Resample the window read into the crop's Web-Mercator pixel grid."""
        west, _, east, north = mercator_frame(lat, lon, size_px, resolution_m)
        pixel = (east - west) / size_px
        dst_transform = rasterio.Affine(pixel, 0.0, west, 0.0, -pixel, north)
        rows, cols = shape
        src_transform = (
            self._ds.transform
            @ rasterio.Affine.translation(window.col_off, window.row_off)
            @ rasterio.Affine.scale(window.width / cols, window.height / rows)
        )
        coefficients = affine_fit(dst_transform, src_transform, self._ds.crs, size_px)
        if coefficients is not None:
            return warp_affine(data, coefficients, size_px)
        self.gdal_warps += 1
        return warp_gdal(data, src_transform, self._ds.crs, dst_transform, size_px)

    def close(self) -> None:
        super().close()
        self._ds.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def affine_fit(
    dst_transform: rasterio.Affine, src_transform: rasterio.Affine, src_crs: Any, size_px: int
) -> tuple[float, float, float, float, float, float] | None:
    """The affine map from crop pixels to pixels of the array read, when one fits the projection to within
    ``AFFINE_TOLERANCE_PX`` everywhere on a grid over the crop; None when the projection bends more than that.

    Over a crop's 256 m the change of projection is affine to a few thousandths of a pixel almost everywhere; the
    fit is checked, not assumed, so a strongly curved case (near a pole, far outside a projection's zone) goes to
    GDAL's warper instead.
    """
    steps = np.linspace(0.0, float(size_px), FIT_POINTS)
    u, v = (a.ravel() for a in np.meshgrid(steps, steps))
    xs, ys = dst_transform @ (u, v)
    src_x, src_y = transform(WEB_MERCATOR, src_crs, np.asarray(xs).tolist(), np.asarray(ys).tolist())
    cols, rows = ~src_transform @ (np.asarray(src_x), np.asarray(src_y))
    design = np.column_stack([u, v, np.ones_like(u)])
    (a, b, c), *_ = np.linalg.lstsq(design, np.asarray(cols), rcond=None)
    (d, e, f), *_ = np.linalg.lstsq(design, np.asarray(rows), rcond=None)
    residual = np.hypot(design @ (a, b, c) - cols, design @ (d, e, f) - rows)
    if not np.isfinite(residual).all() or residual.max() > AFFINE_TOLERANCE_PX:
        return None
    return float(a), float(b), float(c), float(d), float(e), float(f)


def warp_affine(data: np.ndarray, coefficients: tuple[float, ...], size_px: int) -> Image.Image:
    """Bicubic resampling of the ``(3, rows, cols)`` uint8 ``data`` through an affine map (Pillow, continuous
    pixel coordinates: pixel i covers [i, i+1)); the read is already decimated to about the crop's resolution."""
    source = Image.fromarray(np.ascontiguousarray(np.moveaxis(data, 0, -1)), "RGB")
    return source.transform((size_px, size_px), Image.Transform.AFFINE, coefficients, Image.Resampling.BICUBIC)


def warp_gdal(
    data: np.ndarray, src_transform: rasterio.Affine, src_crs: Any, dst_transform: rasterio.Affine, size_px: int
) -> Image.Image:
    """Lanczos warp of the ``(3, rows, cols)`` uint8 ``data`` by GDAL (the general case)."""
    out = np.zeros((3, size_px, size_px), dtype=np.uint8)
    reproject(
        source=data,
        destination=out,
        src_transform=src_transform,
        src_crs=src_crs,
        dst_transform=dst_transform,
        dst_crs=WEB_MERCATOR,
        resampling=Resampling.lanczos,
    )
    return Image.fromarray(np.ascontiguousarray(np.moveaxis(out, 0, -1)), "RGB")
