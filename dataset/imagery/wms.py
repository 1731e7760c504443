"""Imagery from a WMS: one GetMap request per crop, for exactly the crop's frame in EPSG:3857.

The SOURCE is ``wms:`` followed by a GetMap URL template whose ``{bbox}``, ``{width}`` and ``{height}`` are filled
with the crop's frame (``geo.mercator_frame``: minx,miny,maxx,maxy in Web-Mercator metres) and its size in pixels,
so the server renders the very pixel grid the tile path cuts. Requests go through the tile client's
:class:`~dataset.imagery.http.PoliteClient` (User-Agent, timeout, retries) and answers are kept in the tile cache.
A service exception (XML where an image was asked for) is a per-pair failure carrying the server's own words,
unless its code says the request can never work (an unknown layer, CRS or format): then the SOURCE is unusable.
"""

from __future__ import annotations

import contextlib
import io
import re
import urllib.parse
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image, UnidentifiedImageError

from annotator.errors import ImageryError, ImagerySourceError
from annotator.files import sha256_bytes
from annotator.vocabulary import ImageryFailure
from dataset.imagery.base import parse_acquisition_date
from dataset.imagery.crop import Crop, FrameSource, equivalent_zoom
from dataset.imagery.geo import footprint_bbox, mercator_frame
from dataset.imagery.http import PoliteClient, default_cache_dir, store_in_cache

WMS_PREFIX = "wms:"
FIELDS = ("{bbox}", "{width}", "{height}")
WEB_MERCATOR_CODES = ("EPSG:3857", "EPSG:900913", "EPSG:102100", "EPSG:102113")
#: Exception codes (WMS 1.1.1 / 1.3.0) that no other point would avoid: the SOURCE itself is wrong.
SOURCE_WIDE_CODES = frozenset(
    {"LayerNotDefined", "InvalidCRS", "InvalidSRS", "InvalidFormat", "StyleNotDefined", "OperationNotSupported"}
)
MAX_MESSAGE_CHARS = 200


def parse_wms_spec(spec: str) -> str:
    """The GetMap URL template of a ``wms:`` SOURCE, checked.

    Raises:
        ImagerySourceError: Not http(s), a field missing, or a CRS other than Web-Mercator asked for.
    """
    template = spec[len(WMS_PREFIX) :].strip()
    if not template.lower().startswith(("http://", "https://")):
        raise ImagerySourceError(f"the WMS SOURCE {spec!r} must be wms: followed by an http(s):// GetMap URL")
    missing = [field for field in FIELDS if field not in template]
    if missing:
        raise ImagerySourceError(
            f"the WMS URL template lacks {', '.join(missing)}; write e.g. "
            "wms:https://host/wms?SERVICE=WMS&REQUEST=GetMap&LAYERS=ortho&CRS=EPSG:3857&BBOX={bbox}"
            "&WIDTH={width}&HEIGHT={height}&FORMAT=image/jpeg"
        )
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(template).query, keep_blank_values=True))
    params = {key.upper(): value for key, value in query.items()}
    crs = params.get("CRS") or params.get("SRS")
    if crs is not None and crs.upper() not in WEB_MERCATOR_CODES:
        raise ImagerySourceError(
            f"the WMS URL template asks for {crs}; crops are cut in Web-Mercator, so ask for CRS=EPSG:3857 "
            "(SRS=EPSG:3857 for WMS 1.1.1)"
        )
    return template


class WmsSource(FrameSource):
    """A WMS GetMap URL template as an imagery source.

    Attributes:
        template: The GetMap URL with ``{bbox}``, ``{width}``, ``{height}``.
        client: Fetches the maps politely.
        acquired: The template's ``TIME`` value (ISO 8601), or None.
        cache_hits: Maps served from the disk cache.
    """

    def __init__(
        self,
        spec: str,
        *,
        cache_dir: Path | None = None,
        user_agent: str,
        timeout_s: float,
        max_retries: int,
        backoff_s: float | None = None,
    ) -> None:
        super().__init__(spec)
        self.template = parse_wms_spec(spec)
        options = {} if backoff_s is None else {"backoff_s": backoff_s}
        self.client = PoliteClient(user_agent=user_agent, timeout_s=timeout_s, max_retries=max_retries, **options)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache_hits = 0
        self.acquired = _time_parameter(self.template)

    def describe(self) -> str:
        return WMS_PREFIX + self.template.split("?")[0]  # never echo query strings: they often carry API keys

    def url_for(self, lat: float, lon: float, size_px: int, resolution_m: float) -> str:
        """The GetMap URL of the crop at (lat, lon): its frame as the BBOX, ``size_px`` as WIDTH and HEIGHT."""
        bbox = ",".join(f"{edge:.4f}" for edge in mercator_frame(lat, lon, size_px, resolution_m))
        return self.template.replace("{bbox}", bbox).replace("{width}", str(size_px)).replace("{height}", str(size_px))

    def crop(self, lat: float, lon: float, *, size_px: int, resolution_m: float) -> Crop:
        url = self.url_for(lat, lon, size_px, resolution_m)
        where = f"the map at ({lat:.6f}, {lon:.6f}) from {self.describe()}"
        image = self._decode_map(self._get(url, where), where, size_px)
        return Crop(
            image=image,
            footprint=footprint_bbox(lat, lon, size_px, resolution_m),
            zoom=equivalent_zoom(lat, resolution_m),
            resolution_m=resolution_m,
            native_resolution_m=resolution_m,  # the server renders the grid asked for
            acquired=self.acquired,
        )

    def _get(self, url: str, where: str) -> bytes:
        """The image bytes for ``url``: from the cache, else from the server (cached when it is an image)."""
        path = self.cache_dir / "wms" / (digest := sha256_bytes(url.encode()))[:2] / f"{digest}.map"
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            self.cache_hits += 1
            return data
        answer = self.client.get(url, where)
        if answer is None:
            raise ImageryError(f"{where}: the server sent no image", reason=ImageryFailure.TILE_MISSING)
        if "xml" in answer.content_type or answer.body.lstrip()[:1] == b"<":
            raise _service_exception(answer.body, where)
        store_in_cache(path, answer.body, self.cache_dir)
        return answer.body

    def _decode_map(self, data: bytes, where: str, size_px: int) -> Image.Image:
        try:
            with Image.open(io.BytesIO(data)) as raw:
                raw.load()
                rgba = raw.convert("RGBA") if _has_transparency(raw) else None
                image = raw.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ImageryError(f"{where} is not a readable image: {exc}", reason=ImageryFailure.BAD_TILE) from None
        if image.size != (size_px, size_px):
            raise ImageryError(
                f"{where} is {image.width}×{image.height}, not the {size_px}×{size_px} asked for",
                reason=ImageryFailure.BAD_TILE,
            )
        if rgba is not None and (np.asarray(rgba)[:, :, 3] == 0).any():
            raise ImageryError(
                f"{where} is transparent in part: the service has no imagery there", reason=ImageryFailure.TILE_MISSING
            )
        return image


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _time_parameter(template: str) -> str | None:
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(template).query, keep_blank_values=True)
    value = next((v for k, v in query if k.upper() == "TIME" and v and "{" not in v), None)
    return parse_acquisition_date(value)


def _service_exception(body: bytes, where: str) -> ImageryError:
    """The error for an XML answer: the server's message; source-wide when its code says so."""
    code, message = "", ""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        message = body[:MAX_MESSAGE_CHARS].decode("utf-8", "replace")
    else:
        for element in root.iter():
            if element.tag.rsplit("}", 1)[-1] == "ServiceException":
                code = element.get("code", "")
                message = (element.text or "").strip()
                break
        else:
            message = " ".join(t.strip() for t in root.itertext() if t.strip())
    message = re.sub(r"\s+", " ", message)[:MAX_MESSAGE_CHARS] or "no message"
    said = f"{where} came back as a WMS service exception{f' ({code})' if code else ''}: {message}"
    if code in SOURCE_WIDE_CODES:
        return ImagerySourceError(said + "; check the WMS URL template")
    return ImageryError(said, reason=ImageryFailure.FETCH_FAILED)
