"""Tiles from an ``http(s)://…/{z}/{x}/{y}…`` URL template, fetched politely (the WMS source uses the same client).

Politeness is what tile servers' usage policies ask for: an honest User-Agent naming the tool (and, configurable,
the user's contact), a socket timeout, bounded retries with exponential backoff on 429/5xx/timeouts that honour
``Retry-After``, at most a few requests in flight, and a disk cache so no tile is ever fetched twice.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import importlib.metadata
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from annotator.errors import ImageryError, ImagerySourceError
from annotator.files import atomic_write_bytes, sha256_bytes
from annotator.vocabulary import ImageryFailure
from dataset.imagery.base import DEFAULT_MAX_ZOOM, TileKey, TileSource, format_template


def _tool_version() -> str:
    """The installed annotator's version (read from its metadata: this layer does not import the package)."""
    try:
        return importlib.metadata.version("annotator")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


DEFAULT_USER_AGENT = (
    f"annotator/{_tool_version()} (aerial-scene dataset builder; python-urllib; "
    "configurable: pass --user-agent with your contact)"
)
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_MAX_RETRIES = 4
DEFAULT_BACKOFF_S = 1.0
MAX_WAIT_S = 120.0  # longest single wait, even when Retry-After asks for more
MAX_IN_FLIGHT = 4
DEFAULT_SUBDOMAINS = ("a", "b", "c")


@dataclass(frozen=True)
class _Retry:
    """A transient failure of one request: what went wrong, and how long to wait before the next."""

    problem: str
    wait_s: float


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/annotator/tiles`` (``~/.cache/annotator/tiles``): used when no cache folder is given."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "annotator" / "tiles"


@dataclass(frozen=True)
class HttpAnswer:
    """A successful response: its body and its ``Content-Type`` (lower case, parameters dropped)."""

    body: bytes
    content_type: str


class PoliteClient:
    """GET with an honest User-Agent, a socket timeout and bounded retries (backoff, ``Retry-After``).

    Shared by the tile URL source and the WMS source. Thread-safe.

    Attributes:
        requests_made: HTTP requests sent (retries included).
    """

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
    ) -> None:
        self.user_agent = user_agent
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.requests_made = 0
        self._count_lock = threading.Lock()

    def get(self, url: str, where: str) -> HttpAnswer | None:
        """The answer to GET ``url`` (None for 404/410/204 or an empty body), retrying transient failures.

        Args:
            url: What to fetch.
            where: What is fetched, for messages (``tile 18/1/2 from https://…``); never carries a query string.

        Raises:
            ImagerySourceError: The server refuses access (401/403).
            ImageryError: Another client error, or the retries ran out (reason ``fetch_failed``).
        """
        retry = _Retry("", 0.0)
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(MAX_WAIT_S, retry.wait_s))
            outcome = self._attempt(url, where, attempt)
            if not isinstance(outcome, _Retry):
                return outcome
            retry = outcome
        raise ImageryError(
            f"{where} failed after {self.max_retries + 1} attempts ({retry.problem})",
            reason=ImageryFailure.FETCH_FAILED,
        )

    def _attempt(self, url: str, where: str, attempt: int) -> HttpAnswer | None | _Retry:
        """One request: the answer, None when the server has nothing, or a :class:`_Retry` for a transient failure."""
        request = urllib.request.Request(url, headers={"User-Agent": self.user_agent, "Accept": "image/*"})
        with self._count_lock:
            self.requests_made += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data: bytes = response.read()
                if response.status == 204 or not data:
                    return None
                content_type = str(response.headers.get("Content-Type", "")).split(";")[0].strip().lower()
                return HttpAnswer(data, content_type)
        except urllib.error.HTTPError as exc:
            exc.close()
            return self._http_error(exc, where, attempt)
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = f"timed out after {self.timeout_s:g} s" if isinstance(reason, TimeoutError) else f"{reason}"
            return _Retry(problem, self.backoff_s * 2**attempt)

    def _http_error(self, exc: urllib.error.HTTPError, where: str, attempt: int) -> _Retry | None:
        """What an HTTP error status means: nothing there (404/410), retry (429/5xx), or an error raised here."""
        if exc.code in (404, 410):
            return None
        if exc.code in (401, 403):
            raise ImagerySourceError(
                f"the imagery server refused access (HTTP {exc.code}) for {where}; check the URL's API key "
                "and the server's usage policy"
            ) from None
        if exc.code != 429 and exc.code < 500:
            raise ImageryError(
                f"{where} failed with HTTP {exc.code} {exc.reason}", reason=ImageryFailure.FETCH_FAILED
            ) from None
        asked = _retry_after(exc.headers.get("Retry-After"))
        return _Retry(f"HTTP {exc.code}", self.backoff_s * 2**attempt if asked is None else asked)


def store_in_cache(path: Path, data: bytes, cache_dir: Path) -> None:
    """Write a fetched answer to the disk cache atomically (no half-written file is ever left)."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ImagerySourceError(f"cannot write the tile cache at {cache_dir}: {exc}") from exc


class UrlTemplateSource(TileSource):
    """Tiles from a URL template with ``{z}``, ``{x}``, ``{y}`` (or ``{-y}``) and optionally ``{s}``.

    Attributes:
        client: The :class:`PoliteClient` that fetches the tiles (User-Agent, timeout, retries).
        cache_hits: Tiles served from the disk cache.
    """

    def __init__(
        self,
        template: str,
        *,
        cache_dir: Path | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        subdomains: tuple[str, ...] = DEFAULT_SUBDOMAINS,
        max_zoom: int | None = None,
    ) -> None:
        super().__init__(template, max_zoom=DEFAULT_MAX_ZOOM if max_zoom is None else max_zoom)
        self.template = template
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.client = PoliteClient(
            user_agent=user_agent, timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s
        )
        self.subdomains = subdomains
        self.cache_hits = 0
        self._absent: set[TileKey] = set()  # 404s seen in this session: not asked again
        self._count_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def requests_made(self) -> int:
        """HTTP requests sent (retries included); a cached tile costs none."""
        return self.client.requests_made

    @property
    def user_agent(self) -> str:
        return self.client.user_agent

    def describe(self) -> str:
        return self.template.split("?")[0]  # never echo query strings: they often carry API keys

    def url_for(self, z: int, x: int, y: int) -> str:
        """The tile's URL (subdomains rotate by tile so each keeps its own cache entry stable)."""
        subdomain = self.subdomains[(x + y) % len(self.subdomains)] if self.subdomains else ""
        return format_template(self.template, z, x, y, subdomain)

    def cache_path(self, z: int, x: int, y: int) -> Path:
        """Where the tile is cached: keyed by a hash of the template (subdomain-free) and the tile."""
        digest = sha256_bytes(f"{self.template}|{z}/{x}/{y}".encode())
        return self.cache_dir / digest[:2] / f"{digest}.tile"

    def read_tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        key = (z, x, y)
        if key in self._absent:
            return None
        path = self.cache_path(z, x, y)
        with contextlib.suppress(FileNotFoundError):
            cached = path.read_bytes()
            with self._count_lock:
                self.cache_hits += 1
            return cached
        answer = self.client.get(self.url_for(z, x, y), f"tile {z}/{x}/{y} from {self.describe()}")
        if answer is None:
            self._absent.add(key)
            return None
        store_in_cache(path, answer.body, self.cache_dir)
        return answer.body

    def read_many(self, keys: Iterable[TileKey]) -> dict[TileKey, bytes | None]:
        keys = list(keys)
        if len(keys) <= 1:
            return {key: self.read_tile_bytes(*key) for key in keys}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="tiles")
        futures = {key: self._pool.submit(self.read_tile_bytes, *key) for key in keys}
        out: dict[TileKey, bytes | None] = {}
        errors: list[BaseException] = []
        for key, future in futures.items():
            try:
                out[key] = future.result()
            except ImageryError as exc:
                errors.append(exc)
        if errors:  # a source-wide problem (403) outranks a per-tile one
            raise next((e for e in errors if isinstance(e, ImagerySourceError)), errors[0])
        return out

    def close(self) -> None:
        super().close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
