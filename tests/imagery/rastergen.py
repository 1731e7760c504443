"""A seeded synthetic world defined on the ground — discs at known coordinates on a wavy background — rendered as
XYZ tiles, as GeoTIFFs in any CRS and as WMS maps, so crops from every source can be compared feature by feature.

The world is a function of (lon, lat): every rendering samples the same continuous picture at its own pixel centres
(the disc edges are soft, half a metre wide, so no rendering depends on where its pixel grid falls). No binary
fixtures: tests write what they need from a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.enums import Resampling

from dataset.imagery import geo

EDGE_M = 0.5  # width of a disc's soft edge
BACKGROUND = 70.0


@dataclass(frozen=True)
class Disc:
    east_m: float  # from the world's centre
    north_m: float
    radius_m: float
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class DiscWorld:
    """Discs of known colour at known ground offsets from ``(lat, lon)``, on a background of gentle waves."""

    lat: float
    lon: float
    discs: tuple[Disc, ...]

    @classmethod
    def seeded(cls, lat: float, lon: float, seed: int, *, spread_m: float = 90.0) -> DiscWorld:
        """Four discs, one per quadrant (red, green, blue, yellow), at seeded offsets within ``spread_m``."""
        rng = np.random.default_rng(seed)
        colours = [(235, 30, 30), (30, 235, 30), (30, 30, 235), (235, 235, 30)]
        signs = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        discs = tuple(
            Disc(
                sx * float(rng.uniform(0.25, 1.0)) * spread_m,
                sy * float(rng.uniform(0.25, 1.0)) * spread_m,
                float(rng.uniform(3.0, 5.0)),
                colour,
            )
            for (sx, sy), colour in zip(signs, colours, strict=True)
        )
        return cls(lat, lon, discs)

    def _metres(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local east/north metres from the centre (the tangent plane that defines the world)."""
        east = np.radians(lon - self.lon) * geo.prime_vertical_radius(self.lat) * math.cos(math.radians(self.lat))
        north = np.radians(lat - self.lat) * geo.meridional_radius(self.lat)
        return east, north

    def disc_lonlat(self, disc: Disc) -> tuple[float, float]:
        """Where a disc's centre is, in degrees."""
        lon = self.lon + math.degrees(
            disc.east_m / (geo.prime_vertical_radius(self.lat) * math.cos(math.radians(self.lat)))
        )
        lat = self.lat + math.degrees(disc.north_m / geo.meridional_radius(self.lat))
        return lon, lat

    def render(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """RGB (``shape + (3,)``, uint8) of the world at the given coordinates."""
        east, north = self._metres(lon, lat)
        wave = BACKGROUND + 25.0 * np.sin(2 * np.pi * east / 17.0) * np.cos(2 * np.pi * north / 23.0)
        out = np.repeat(wave[..., None], 3, axis=-1)
        for disc in self.discs:
            distance = np.hypot(east - disc.east_m, north - disc.north_m)
            alpha = np.clip((disc.radius_m - distance) / EDGE_M + 0.5, 0.0, 1.0)[..., None]
            out = out * (1 - alpha) + np.asarray(disc.colour, dtype=np.float64) * alpha
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def render_mercator(self, west: float, north: float, pixel: float, width: int, height: int) -> np.ndarray:
        """The world on a Web-Mercator grid (top-left corner ``west, north``, ``pixel`` metres square)."""
        xs = west + (np.arange(width) + 0.5) * pixel
        ys = north - (np.arange(height) + 0.5) * pixel
        x, y = np.meshgrid(xs, ys)
        lon = np.degrees(x / geo.EARTH_RADIUS_M)
        lat = np.degrees(np.arctan(np.sinh(y / geo.EARTH_RADIUS_M)))
        return self.render(lon, lat)

    def write_tiles(self, root: Path, zoom: int, radius_tiles: int = 3) -> Path:
        """PNG tiles ``root/z/x/y.png`` around the centre, rendered at their pixel centres."""
        world_m = 2 * math.pi * geo.EARTH_RADIUS_M
        tile_m = world_m / (1 << zoom)
        cx, cy = geo.tile_of(self.lat, self.lon, zoom)
        for x in range(cx - radius_tiles, cx + radius_tiles + 1):
            for y in range(cy - radius_tiles, cy + radius_tiles + 1):
                pixels = self.render_mercator(
                    x * tile_m - world_m / 2, world_m / 2 - y * tile_m, tile_m / geo.TILE_SIZE, 256, 256
                )
                path = root / str(zoom) / str(x) / f"{y}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
        return root

    def write_geotiff(
        self,
        path: Path,
        crs: str,
        pixel_m: float,
        *,
        half_m: float = 200.0,
        tags: dict[str, str] | None = None,
        overviews: tuple[int, ...] = (),
        driver: str = "GTiff",
        noise_seed: int | None = None,
        alpha_hole: bool = False,
    ) -> Path:
        """A north-up RGB GeoTIFF in ``crs`` covering ±``half_m`` around the centre at ``pixel_m`` CRS units.

        ``noise_seed`` adds seeded pixel noise (so the file does not compress to nothing); ``alpha_hole`` adds an
        alpha band that is transparent over the north-east quarter.
        """
        to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        corners = [self.disc_lonlat(Disc(e, n, 0.0, (0, 0, 0))) for e in (-half_m, half_m) for n in (-half_m, half_m)]
        xs, ys = to_crs.transform([c[0] for c in corners], [c[1] for c in corners])
        left, right, bottom, top = min(xs), max(xs), min(ys), max(ys)
        width, height = math.ceil((right - left) / pixel_m), math.ceil((top - bottom) / pixel_m)
        transform = rasterio.Affine(pixel_m, 0.0, left, 0.0, -pixel_m, top)
        cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        x, y = left + cols * pixel_m, top - rows * pixel_m
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
        pixels = np.moveaxis(self.render(np.asarray(lon), np.asarray(lat)), -1, 0)
        if noise_seed is not None:
            noise = np.random.default_rng(noise_seed).integers(-20, 21, pixels.shape)
            pixels = np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        bands = [pixels[0], pixels[1], pixels[2]]
        if alpha_hole:
            alpha = np.full((height, width), 255, dtype=np.uint8)
            alpha[: height // 2, width // 2 :] = 0
            bands.append(alpha)
        profile = {
            "driver": driver,
            "width": width,
            "height": height,
            "count": len(bands),
            "dtype": "uint8",
            "crs": crs,
            "transform": transform,
        }
        if driver == "GTiff":
            profile |= {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        else:
            profile |= {"blocksize": 256, "compress": "deflate", "overview_resampling": "average"}
        if alpha_hole:
            profile["photometric"] = "RGB"
            profile["alpha"] = "YES" if driver == "GTiff" else None
        with rasterio.open(path, "w", **{k: v for k, v in profile.items() if v is not None}) as dst:
            dst.write(np.stack(bands))
            if alpha_hole:
                dst.colorinterp = [*dst.colorinterp[:3], rasterio.enums.ColorInterp.alpha]
            if tags:
                dst.update_tags(**tags)
            if overviews:
                dst.build_overviews(list(overviews), Resampling.average)
        return path


def expected_position(world: DiscWorld, disc: Disc, lat: float, lon: float, size_px: int, resolution_m: float):
    """Where a disc's centre must land in a crop at (lat, lon): continuous (col, row), pixel i covering [i, i+1)."""
    west, _, east, north = geo.mercator_frame(lat, lon, size_px, resolution_m)
    pixel = (east - west) / size_px
    x, y = geo.mercator_xy(*reversed(world.disc_lonlat(disc)))
    return (x - west) / pixel, (north - y) / pixel


def disc_centroid(image: Image.Image, colour: tuple[int, int, int], around: tuple[float, float], reach: int = 40):
    """Centroid (col, row) of the pixels close to ``colour`` within ``reach`` pixels of ``around``."""
    pixels = np.asarray(image, dtype=np.float64)
    target = np.asarray(colour, dtype=np.float64)
    closeness = np.clip(1.0 - np.linalg.norm(pixels - target, axis=-1) / 160.0, 0.0, 1.0)
    rows, cols = np.indices(closeness.shape)
    near = (np.abs(cols + 0.5 - around[0]) <= reach) & (np.abs(rows + 0.5 - around[1]) <= reach)
    weights = np.where(near, closeness, 0.0)
    total = weights.sum()
    assert total > 10, f"no disc of colour {colour} near {around}"
    return float((weights * (cols + 0.5)).sum() / total), float((weights * (rows + 0.5)).sum() / total)
