"""A polite Overpass client that reads its answers itself, and the response cache.

What the public server's operators ask for, and how it is done here:

- an honest User-Agent naming the tool and a contact (urllib's stock agent is answered with HTTP 406 by
  overpass-api.de since 2026);
- one request at a time (the client is sequential; its only thread is the deadline timer below);
- HTTP 429 → wait at least ``min_429_wait_s`` (30 s) and the server's ``Retry-After`` (seconds or an HTTP date),
  backing off exponentially, ``max_429_attempts`` tries; HTTP 5xx, runtime remarks, timeouts and reset
  connections → back off and retry ``max_attempts`` times; then :class:`OverpassRefused` (the caller leaves those
  pairs for the next run). Every wait is announced through ``notify`` (the CLI prints it on stderr);
- raw responses cached in ``osm_responses`` keyed by the SHA-256 of the query, so nothing is asked twice.

What a flaky network or a wrong server cannot do to the run (issue 11):

- outlive ``timeout_s``: it is a TOTAL deadline per request (connect, headers and body), not a per-``recv``
  socket timeout a server dripping one byte at a time resets forever — a timer shuts the socket down when it
  passes, wherever the client is blocked;
- fill the memory: the body is read in chunks up to ``max_body_bytes`` (:data:`MAX_BODY_BYTES`, 512 MiB);
- be slow to parse: the chunks are joined once and parsed once (overpy concatenated 4 KiB chunks one by one, a
  quadratic 53 s for a 25.6 MB answer), and the answer's shape is checked (:mod:`annotator.osm.answer`) before it
  is used or cached;
- leak a password given in the URL (``https://user:pw@host/…``): it is sent as HTTP Basic authentication and
  every message and stored ``source`` shows :func:`~annotator.errors.redact_url`'s form.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator import __version__
from annotator.errors import OverpassRefused, redact_url
from annotator.osm import DEFAULT_OVERPASS_URL, MAX_BODY_BYTES
from annotator.osm.answer import BadAnswer, OverpassAnswer, excerpt, parse_answer
from annotator.osm.cluster import Cluster
from annotator.osm.tags import overpass_filters
from annotator.store.models import OsmResponse

DEFAULT_USER_AGENT = (
    f"annotator/{__version__} (ADVANCE-style dataset builder; pass --user-agent with your contact e-mail)"
)
_CHUNK = 1024 * 1024
#: HTTP statuses that mean "busy or briefly broken, ask again later" (Overpass answers 504 when overloaded).
_RETRIED_STATUSES = frozenset({500, 502, 503, 504})


@dataclass
class OverpassOptions:
    """How the client talks to the server. Tests shrink the waits; the defaults follow the operators' rules."""

    url: str = DEFAULT_OVERPASS_URL
    user_agent: str = DEFAULT_USER_AGENT
    timeout_s: float = 200.0  # total deadline per request: connect, headers and the whole body
    query_timeout_s: int = 180  # [timeout:] asked of the server (must stay below timeout_s)
    max_attempts: int = 4  # tries per query for 5xx, runtime remarks, timeouts and reset connections
    max_429_attempts: int = 6
    min_429_wait_s: float = 30.0
    backoff_s: float = 15.0  # first wait after a 5xx / remark / timeout / reset, doubled each time
    max_wait_s: float = 600.0  # no single wait is longer; a Retry-After beyond it gives up at once
    max_body_bytes: int = MAX_BODY_BYTES
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    notify: Callable[[str], None] | None = field(default=None, repr=False)  # told of every wait, in one sentence

    @classmethod
    def from_flags(
        cls,
        *,
        url: str | None,
        user_agent: str | None,
        timeout_s: float,
        retries: int,
        max_response_mb: float | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> OverpassOptions:
        """Options from the ``prelabel`` flags (None: the default). The ``[timeout:]`` asked of the server is
        90 % of the request deadline, so the server gives up (and says why) before the client does."""
        return cls(
            url=url or DEFAULT_OVERPASS_URL,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            timeout_s=timeout_s,
            max_attempts=retries + 1,
            query_timeout_s=max(1, int(timeout_s * 0.9)),
            max_body_bytes=int(max_response_mb * 1e6) if max_response_mb else MAX_BODY_BYTES,
            notify=notify,
        )


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an Overpass endpoint (its password hidden), or None when it can."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number or out of range
    except ValueError as exc:
        return f"{redact_url(url)!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"{redact_url(url)!r} is not an http:// or https:// URL; give the interpreter's address, "
            f"e.g. {DEFAULT_OVERPASS_URL}"
        )
    return None


def user_agent_problem(user_agent: str) -> str | None:
    """Why `user_agent` cannot be sent as a header, or None."""
    if any(ord(c) < 32 or ord(c) == 127 for c in user_agent) or not user_agent.isascii():
        return "the User-Agent must be one line of printable ASCII, e.g. 'annotator (me@example.org)'"
    return None


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


class _Retry(Exception):
    """One try failed in a way worth retrying (after a backoff); `reason` says how."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _TooManyRequests(_Retry):
    """HTTP 429."""


class _Deadline:
    """The total time one request may take. A timer shuts the request's sockets down when it passes, so a
    blocked connect, TLS handshake, header or body read returns at once however slowly the server drips."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(0.001, self.at - time.monotonic())

    def watch(self, connection_class: type[http.client.HTTPConnection], *args: Any, **kwargs: Any) -> Any:
        """Make a connection (urllib's handlers call this as their connection class) and watch its socket."""
        connection = connection_class(*args, **kwargs)
        with self._lock:
            self._connections.append(connection)
        return connection

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            for connection in self._connections:
                sock = connection.sock
                if sock is not None:
                    with contextlib.suppress(OSError):  # already closed
                        sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(self.deadline.watch, http.client.HTTPConnection), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = getattr(self, "_context", None)  # urllib's verifying default context
        return self.do_open(partial(self.deadline.watch, http.client.HTTPSConnection), req, context=context)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _media_type(headers: Message) -> str:
    """``application/json`` of ``application/json; charset=utf-8``."""
    return (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Message
    body: bytes


class OverpassClient:
    """Sends queries one at a time with the configured User-Agent, deadline, size cap and backoff."""

    def __init__(self, options: OverpassOptions | None = None) -> None:
        self.options = options or OverpassOptions()
        problem = url_problem(self.options.url)
        if problem:
            raise OverpassRefused(f"cannot use the Overpass endpoint: {problem}")
        self.endpoint = redact_url(self.options.url)  # what messages and stored rows name
        parts = urlsplit(self.options.url)
        self._headers = {"User-Agent": self.options.user_agent}
        if parts.username is not None:  # credentials in the URL: HTTP Basic, and a URL without them
            pair = f"{parts.username}:{parts.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            netloc = parts.hostname or ""
            netloc = f"[{netloc}]" if ":" in netloc else netloc
            netloc += f":{parts.port}" if parts.port is not None else ""
            self._request_url = urlunsplit(parts._replace(netloc=netloc))
        else:
            self._request_url = self.options.url
        self.requests_made = 0

    def _exchange(self, query: str) -> _Reply:
        """One POST under one total deadline; the whole body read in chunks up to the size cap."""
        opts = self.options
        request = urllib.request.Request(
            self._request_url, data=query.encode("utf-8"), headers=self._headers, method="POST"
        )
        self.requests_made += 1
        received = 0
        with _Deadline(opts.timeout_s) as deadline:
            opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline))
            try:
                try:
                    response: Any = opener.open(request, timeout=deadline.remaining())
                except urllib.error.HTTPError as exc:  # a status other than 2xx: its body still says why
                    response = exc
                with response:
                    announced = response.headers.get("Content-Length", "")
                    if announced.isdigit() and int(announced) > opts.max_body_bytes:
                        raise self._too_large()
                    chunks = []
                    while not deadline.passed:
                        chunk = response.read1(_CHUNK)
                        if not chunk:
                            break
                        received += len(chunk)
                        if received > opts.max_body_bytes:
                            raise self._too_large()
                        chunks.append(chunk)
                    if deadline.passed:
                        raise _Retry(f"no answer within {opts.timeout_s:g} s")
                    return _Reply(response.status, response.headers, b"".join(chunks))
            except (OSError, http.client.HTTPException) as exc:
                raise self._failure(exc, deadline, received) from None

    def _too_large(self) -> OverpassRefused:
        cap = self.options.max_body_bytes / 1e6
        return OverpassRefused(
            f"{self.endpoint} sent an answer larger than {cap:g} MB; query fewer pairs at a time with a smaller "
            "--cell-km (or raise --max-response-mb)"
        )

    def _failure(self, exc: BaseException, deadline: _Deadline, received: int) -> Exception:
        """The retry (or refusal) a transport error means."""
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if deadline.passed or isinstance(cause, TimeoutError):
            return _Retry(f"no answer within {self.options.timeout_s:g} s")
        if isinstance(
            cause, ConnectionResetError | ConnectionAbortedError | BrokenPipeError | http.client.IncompleteRead
        ):
            where = f"after {received:,} bytes of the answer" if received else "before any answer"
            return _Retry(f"the connection was reset {where}")
        if isinstance(cause, http.client.HTTPException):
            return _Retry(f"not a valid HTTP answer ({type(cause).__name__})")
        detail = getattr(cause, "strerror", None) or cause
        return OverpassRefused(f"cannot reach {self.endpoint}: {detail}; check --overpass-url and the network")

    def _attempt(self, query: str) -> tuple[bytes, OverpassAnswer]:
        """One request, its answer checked: the body and the answer, or `_Retry`, or :class:`OverpassRefused`."""
        reply = self._exchange(query)
        status, endpoint = reply.status, self.endpoint
        if status == 200:
            media_type = _media_type(reply.headers)
            if media_type != "application/json":
                raise OverpassRefused(
                    f"{endpoint} answered with content type {media_type or 'none'!r}, not JSON "
                    f"({excerpt(reply.body)!r}); check --overpass-url points at an Overpass API interpreter"
                )
            try:
                answer = parse_answer(reply.body)
            except BadAnswer as exc:
                raise OverpassRefused(
                    f"{endpoint} sent an answer Overpass never gives: {exc}; check --overpass-url points at an "
                    "Overpass API interpreter"
                ) from None
            if answer.remark:
                raise _Retry(f"runtime remark: {answer.remark}")
            return reply.body, answer
        retry_after = retry_after_seconds(reply.headers.get("Retry-After"))
        if status == 429:
            raise _TooManyRequests("429 Too Many Requests", retry_after_s=retry_after)
        if status in _RETRIED_STATUSES:
            label = "504 Gateway Timeout: the server is too busy" if status == 504 else f"HTTP {status}"
            raise _Retry(label, retry_after_s=retry_after)
        if status == 400:
            raise OverpassRefused(f"{endpoint} rejected the query as malformed: {excerpt(reply.body)}")
        hint = " (it refuses this User-Agent; pass --user-agent with a contact)" if status == 406 else ""
        raise OverpassRefused(f"{endpoint} answered HTTP {status}{hint}: {excerpt(reply.body)}")

    def _wait(self, seconds: float, message: str) -> None:
        if self.options.notify is not None:
            self.options.notify(message)
        self.options.sleep(seconds)

    def fetch(self, query: str) -> tuple[bytes, OverpassAnswer]:
        """The raw JSON body for `query` and its checked answer; raises :class:`OverpassRefused` once the
        retries are used up or the server's answer can never be right."""
        opts = self.options
        failures = 0
        too_many = 0
        while True:
            try:
                return self._attempt(query)
            except _TooManyRequests as exc:
                too_many += 1
                asked = exc.retry_after_s
                if too_many >= opts.max_429_attempts or (asked is not None and asked > opts.max_wait_s):
                    said = f", asking for {asked:.0f} s" if asked is not None else ""
                    raise OverpassRefused(
                        f"{self.endpoint} kept answering 429 Too Many Requests ({too_many} times{said}); another "
                        "client on this address may be using the slots — wait a while, then rerun "
                        "`annotator prelabel`"
                    ) from None
                wait = max(min(opts.max_wait_s, opts.min_429_wait_s * 2 ** (too_many - 1)), asked or 0.0)
                why = f"Retry-After: {asked:.0f} s" if asked is not None else "no Retry-After given"
                self._wait(
                    wait,
                    f"{self.endpoint} answered 429 Too Many Requests ({why}); waiting {wait:.0f} s before try "
                    f"{too_many + 1} of {opts.max_429_attempts}",
                )
            except _Retry as exc:
                failures += 1
                if failures >= opts.max_attempts:
                    raise OverpassRefused(
                        f"{self.endpoint} failed {failures} time(s) in a row (last: {exc.reason})"
                    ) from None
                wait = max(min(opts.max_wait_s, opts.backoff_s * 2 ** (failures - 1)), exc.retry_after_s or 0.0)
                if wait > opts.max_wait_s:
                    raise OverpassRefused(
                        f"{self.endpoint} failed ({exc.reason}) and asks to wait {wait:.0f} s; rerun "
                        "`annotator prelabel` later"
                    ) from None
                self._wait(
                    wait,
                    f"{self.endpoint}: {exc.reason}; retrying in {wait:.0f} s (try {failures + 1} of "
                    f"{opts.max_attempts})",
                )


def cached_response(session: Session, query: str) -> OsmResponse | None:
    return session.scalar(select(OsmResponse).where(OsmResponse.query_sha256 == query_sha256(query)))


def store_response(session: Session, endpoint: str, query: str, body: bytes) -> OsmResponse:
    row = OsmResponse(query_sha256=query_sha256(query), endpoint=endpoint, query=query, body=body)
    session.add(row)
    return row
