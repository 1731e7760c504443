"""A polite Overpass client on top of overpy, and the response cache.

What the public server's operators ask for, and how it is done here:

- an honest User-Agent naming the tool and a contact: overpy sends urllib's stock agent (answered with HTTP 406
  by overpass-api.de since 2026), but it hands ``url`` straight to ``urlopen``, so a ``urllib.request.Request``
  carrying the header is passed as the URL;
- one request at a time (the client is sequential and has no threads);
- a socket timeout: overpy has none, so the default socket timeout is set around each request and restored;
- HTTP 429 → wait at least ``min_429_wait_s`` (30 s) and back off exponentially; HTTP 504, runtime remarks and
  timeouts → back off and retry ``max_attempts`` times, then :class:`OverpassRefused` (the caller leaves those
  pairs for the next run); overpy's own fixed-sleep retry is switched off;
- raw responses cached in ``osm_responses`` keyed by the SHA-256 of the query, so nothing is asked twice.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator import __version__
from annotator.errors import OverpassRefused
from annotator.osm import DEFAULT_OVERPASS_URL
from annotator.osm.cluster import Cluster
from annotator.osm.tags import overpass_filters
from annotator.store.models import OsmResponse

DEFAULT_USER_AGENT = (
    f"annotator/{__version__} (ADVANCE-style dataset builder; pass --user-agent with your contact e-mail)"
)


@dataclass
class OverpassOptions:
    """How the client talks to the server. Tests shrink the waits; the defaults follow the operators' rules."""

    url: str = DEFAULT_OVERPASS_URL
    user_agent: str = DEFAULT_USER_AGENT
    timeout_s: float = 200.0  # socket timeout: a stalled server cannot block the run forever
    query_timeout_s: int = 180  # [timeout:] asked of the server (must stay below timeout_s)
    max_attempts: int = 4  # tries per query for 504, runtime remarks and timeouts
    max_429_attempts: int = 6
    min_429_wait_s: float = 30.0
    backoff_s: float = 15.0  # first wait after a 504 / remark / timeout, doubled each time
    max_wait_s: float = 600.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @classmethod
    def from_flags(cls, *, url: str | None, user_agent: str | None, timeout_s: float, retries: int) -> OverpassOptions:
        """Options from the ``prelabel`` flags (None: the default). The ``[timeout:]`` asked of the server is
        90 % of the socket timeout, so the server gives up (and says why) before the socket does."""
        return cls(
            url=url or DEFAULT_OVERPASS_URL,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            timeout_s=timeout_s,
            max_attempts=retries + 1,
            query_timeout_s=max(1, int(timeout_s * 0.9)),
        )


def query_sha256(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def build_query(cluster: Cluster, *, query_timeout_s: int = 180) -> str:
    """The Overpass QL for one cluster: every class filter in the union bbox, plus the tagged areas enclosing
    each point (a polygon larger than the whole box has no segment in it, so a bbox query alone misses it)."""
    west, south, east, north = cluster.bounds
    bbox = f"({south:.6f},{west:.6f},{north:.6f},{east:.6f})"
    filters = overpass_filters()
    lines = [f"[out:json][timeout:{int(query_timeout_s)}];", "("]
    lines += [f"  nwr{f}{bbox};" for f in filters]
    lines += [")->.inbox;", "("]
    seen = set()
    for point in cluster.points:
        at = f"{point.lat:.6f},{point.lon:.6f}"
        if at not in seen:
            seen.add(at)
            lines.append(f"  is_in({at});")
    lines += [")->.areas;", "("]
    lines += [f"  wr(pivot.areas){f};" for f in filters]
    lines += [")->.enclosing;", "(.inbox; .enclosing;);", "out meta geom;"]
    return "\n".join(lines) + "\n"


def parse_response(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """Elements and the data timestamp (``osm3s.timestamp_osm_base``) of an ``[out:json]`` response."""
    data = json.loads(body)
    return list(data.get("elements", [])), (data.get("osm3s") or {}).get("timestamp_osm_base")


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Set the default socket timeout for the sockets opened inside the block, then restore it."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def _raw_overpass(request: urllib.request.Request) -> Any:
    import overpy

    class RawOverpass(overpy.Overpass):
        """overpy's HTTP and status handling, keeping the raw JSON body (for the cache) instead of objects."""

        raw: bytes = b""

        def parse_json(self, data: bytes | str, encoding: str = "utf-8") -> Any:
            raw = data if isinstance(data, bytes) else data.encode(encoding)
            parsed = json.loads(raw)
            if "remark" in parsed and parsed["remark"]:
                self._handle_remark_msg(msg=parsed["remark"])
            self.raw = raw
            return parsed

        def parse_xml(self, data: bytes | str, encoding: str = "utf-8", parser: Any = None) -> Any:
            raise overpy.exception.OverpassUnknownContentType("application/osm3s+xml (expected JSON)")

    return RawOverpass(url=request, max_retry_count=0)  # a Request works as the url


class OverpassClient:
    """Sends queries one at a time with the configured User-Agent, timeout and backoff."""

    def __init__(self, options: OverpassOptions | None = None) -> None:
        self.options = options or OverpassOptions()
        self.requests_made = 0

    def _once(self, query: str) -> bytes:
        request = urllib.request.Request(self.options.url, headers={"User-Agent": self.options.user_agent})
        api = _raw_overpass(request)
        self.requests_made += 1
        with socket_timeout(self.options.timeout_s):
            api.query(query)
        return api.raw

    def fetch(self, query: str) -> bytes:
        """The raw JSON body for `query`; raises :class:`OverpassRefused` once retries are used up."""
        import overpy.exception as ox

        opts = self.options
        failures = 0
        too_many = 0
        while True:
            try:
                return self._once(query)
            except ox.OverpassTooManyRequests:
                too_many += 1
                if too_many >= opts.max_429_attempts:
                    raise OverpassRefused(
                        f"{opts.url} kept answering 429 Too Many Requests ({too_many} times); another client on "
                        "this address may be using the slots — wait a while, then rerun `annotator prelabel`"
                    ) from None
                opts.sleep(min(opts.max_wait_s, opts.min_429_wait_s * 2 ** (too_many - 1)))
                continue
            except (
                ox.OverpassGatewayTimeout,
                ox.OverpassRuntimeError,
                ox.OverpassRuntimeRemark,
                ox.OverpassUnknownError,
            ) as exc:
                reason = _describe(exc)
            except TimeoutError:
                reason = f"no answer within {opts.timeout_s:g} s"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    reason = f"no answer within {opts.timeout_s:g} s"
                else:
                    raise OverpassRefused(f"cannot reach {opts.url}: {exc.reason}") from None
            except ox.OverpassBadRequest as exc:
                raise OverpassRefused(f"{opts.url} rejected the query as malformed: {'; '.join(exc.msgs)}") from None
            except ox.OverpassUnknownHTTPStatusCode as exc:
                hint = " (it refuses this User-Agent; pass --user-agent with a contact)" if exc.code == 406 else ""
                raise OverpassRefused(f"{opts.url} answered HTTP {exc.code}{hint}") from None
            except ox.OverpassUnknownContentType as exc:
                raise OverpassRefused(f"{opts.url} answered with content type {exc.content_type!r}, not JSON") from None
            failures += 1
            if failures >= opts.max_attempts:
                raise OverpassRefused(f"{opts.url} failed {failures} times in a row (last: {reason})")
            opts.sleep(min(opts.max_wait_s, opts.backoff_s * 2 ** (failures - 1)))


def _describe(exc: Exception) -> str:
    import overpy.exception as ox

    if isinstance(exc, ox.OverpassGatewayTimeout):
        return "504 Gateway Timeout: the server is too busy"
    return f"runtime remark: {getattr(exc, 'msg', exc)}"


def cached_response(session: Session, query: str) -> OsmResponse | None:
    return session.scalar(select(OsmResponse).where(OsmResponse.query_sha256 == query_sha256(query)))


def store_response(session: Session, endpoint: str, query: str, body: bytes) -> OsmResponse:
    row = OsmResponse(query_sha256=query_sha256(query), endpoint=endpoint, query=query, body=body)
    session.add(row)
    return row
