"""Connecting to Label Studio and turning its failures into one sentence a curator can act on.

Both key kinds work: a legacy token is sent as ``Token KEY``; a personal access token (a JWT refresh token) is
detected by the SDK, exchanged and refreshed (``Bearer``). The key never appears in a message: errors are raised
``from None`` (no chained httpx request in tracebacks) and every message is scrubbed of the key.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annotator.errors import LabelStudioAuthError, LabelStudioProjectGone, LabelStudioUnavailable, redact_url

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.pagination import SyncPager

ENV_URL = "LABEL_STUDIO_URL"
ENV_KEY = "LABEL_STUDIO_API_KEY"
TIMEOUT_S = 120.0
#: Every listing is bounded: at most this many pages, and this long in all (a server that pages forever is refused).
MAX_PAGES = 10_000
PAGING_DEADLINE_S = 1800.0
#: How much of a server's unexpected answer (an HTML error page) a message quotes.
EXCERPT_CHARS = 120


@dataclass
class Connection:
    """An authenticated SDK client and the URL it talks to (the key is kept out of repr)."""

    url: str
    client: LabelStudio = field(repr=False)
    api_key: str = field(repr=False)
    user_id: int = 0

    @property
    def shown_url(self) -> str:
        """The URL as messages and reports show it (any ``user:password@`` password hidden)."""
        return redact_url(self.url)

    @contextmanager
    def errors(self, *, project_id: int | None = None) -> Iterator[None]:
        """Map connection errors, 401/403 and (for `project_id`) 404 to user-facing errors."""
        with translate_errors(self.url, self.api_key, project_id=project_id):
            yield


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise LabelStudioUnavailable(f"the Label Studio URL {redact_url(url)!r} must start with http:// or https://")
    return url


def _scrub(text: str, api_key: str) -> str:
    return text.replace(api_key, "***") if api_key else text


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, one-line excerpt of a server's answer: an HTML page becomes its title or first words."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, flags=re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        text = title.group(1)
    elif "<" in text and ">" in text:
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
        text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(html.unescape(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@contextmanager
def translate_errors(url: str, api_key: str, *, project_id: int | None = None) -> Iterator[None]:
    """Turn httpx/SDK failures inside the block into LabelStudioUnavailable / AuthError / ProjectGone."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    shown = redact_url(url)
    try:
        yield
    except ApiError as exc:
        url = shown
        status = exc.status_code
        if status in (401, 403):
            raise LabelStudioAuthError(
                f"Label Studio at {url} rejected the API key (HTTP {status}); check --ls-api-key or "
                "LABEL_STUDIO_API_KEY (a legacy token or a personal access token from Account & Settings)"
            ) from None
        if status == 404 and project_id is not None:
            raise LabelStudioProjectGone(
                f"Label Studio project {project_id} at {url} no longer exists; push again with another "
                "--project title to create a new one"
            ) from None
        body = excerpt(_scrub(str(exc.body), api_key))
        if status is not None and 200 <= status < 300:  # a 2xx answer that is not JSON (the SDK could not parse it)
            raise LabelStudioUnavailable(
                f"the server at {url} does not answer like Label Studio (it sent: {body!r}); check --ls-url"
            ) from None
        raise LabelStudioUnavailable(
            f"Label Studio at {url} answered HTTP {status} ({body}); is this the right --ls-url?"
        ) from None
    except httpx.TimeoutException:
        raise LabelStudioUnavailable(f"Label Studio at {shown} did not answer in time; is it overloaded?") from None
    except (httpx.TransportError, httpx.InvalidURL, OSError):  # OSError: urllib's URLError (the /health probe)
        raise LabelStudioUnavailable(
            f"Label Studio is not reachable at {shown}; is it running (`annotator ls serve` starts one) and is "
            "--ls-url / LABEL_STUDIO_URL right?"
        ) from None
    except ValueError as exc:  # JSON decoding of a non-Label-Studio answer (an HTML page at the wrong URL)
        raise LabelStudioUnavailable(
            f"the server at {shown} does not answer like Label Studio ({excerpt(_scrub(str(exc), api_key))}); "
            "check --ls-url"
        ) from None


def connect(url: str | None, api_key: str | None, *, timeout_s: float = TIMEOUT_S) -> Connection:
    """Connect and check the key with one request (who am I).

    Raises:
        LabelStudioUnavailable: no URL, not reachable, or not a Label Studio server.
        LabelStudioAuthError: no key, or the key is rejected.
    """
    if not url:
        raise LabelStudioUnavailable("no Label Studio URL: pass --ls-url or set LABEL_STUDIO_URL")
    if not api_key:
        raise LabelStudioAuthError("no Label Studio API key: pass --ls-api-key or set LABEL_STUDIO_API_KEY")
    url = normalise_url(url)
    shown = redact_url(url)
    from label_studio_sdk import LabelStudio

    with translate_errors(url, api_key):
        client = LabelStudio(base_url=url, api_key=api_key, timeout=timeout_s)
        me: Any = client.users.whoami()
    user_id = int(getattr(me, "id", 0) or 0)
    if not user_id:
        raise LabelStudioUnavailable(f"the server at {shown} does not answer like Label Studio; check --ls-url")
    return Connection(url=url, client=client, api_key=api_key, user_id=user_id)


def _item_id(item: Any) -> object:
    return item.get("id") if isinstance(item, dict) else getattr(item, "id", None)


def bounded_pages(
    conn: Connection,
    fetch: Callable[[int], SyncPager[Any, Any]],
    *,
    what: str,
    page_size: int,
    items_field: str,
    total_field: str,
    project_id: int | None = None,
    max_pages: int = MAX_PAGES,
    deadline_s: float = PAGING_DEADLINE_S,
) -> Iterator[list[Any]]:
    """The pages of a Label Studio listing, checked and bounded; `fetch(n)` asks for page n (from 1).

    The SDK's own pager asks for the next page for as long as the last one was non-empty, so a server answering
    ``{"results": "nope"}`` (a string has a length) or the same page again is paged forever. Here every page must
    have a list of items with ids under `items_field` and a count under `total_field`; paging stops at the count,
    a short or empty page, or a null ``next``, and a listing that outgrows its count, repeats items, passes
    `max_pages` or takes over `deadline_s` is refused with one sentence.

    Raises:
        LabelStudioUnavailable: a malformed page, or a listing that does not end.
    """
    shown = conn.shown_url
    started = time.monotonic()
    seen_ids: set[object] = set()
    for page in range(1, max_pages + 1):
        if time.monotonic() - started > deadline_s:
            raise LabelStudioUnavailable(
                f"Label Studio at {shown} took over {deadline_s:.0f} s to list {what} ({page - 1} pages); "
                "is it overloaded? run the command again later"
            )
        with conn.errors(project_id=project_id):
            pager = fetch(page)
        response = pager.response
        present: set[str] = set(getattr(response, "model_fields_set", ()))
        items = getattr(response, items_field, None)
        total = getattr(response, total_field, None)
        if items_field not in present or not isinstance(items, list):
            raise _malformed(shown, what, f"its {items_field!r} is not a list")
        if total_field not in present or not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise _malformed(shown, what, f"it has no count ({total_field!r})")
        ids = [_item_id(item) for item in items]
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _malformed(shown, what, "an item has no numeric id")
        if seen_ids.intersection(ids) or len(set(ids)) != len(ids):
            raise _malformed(shown, what, "it repeats items of an earlier page")
        seen_ids.update(ids)
        if len(seen_ids) > total:
            raise _malformed(shown, what, f"it lists more than the {total} it announced")
        if items:
            yield [item if isinstance(item, dict) else item.model_dump() for item in items]
        last = not items or len(items) < page_size or len(seen_ids) >= total
        if last or ("next" in present and getattr(response, "next", None) is None):
            return
    raise _malformed(shown, what, f"it did not end after {max_pages} pages")


def _malformed(shown_url: str, what: str, why: str) -> LabelStudioUnavailable:
    return LabelStudioUnavailable(
        f"Label Studio at {shown_url} sent a malformed page of {what} ({why}); is --ls-url a Label Studio server?"
    )


def iter_task_pages(
    conn: Connection,
    ls_project_id: int,
    *,
    page_size: int,
    query: str | None = None,
    fields: str = "all",
    include: str | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of a project's tasks as dicts, checked and bounded (:func:`bounded_pages`).

    `include` names the task fields to send (comma-separated, ``id`` among them): Label Studio then skips
    computing the rest, which makes a listing of ids, data and annotation counts ~3× faster.
    """
    return bounded_pages(
        conn,
        lambda page: conn.client.tasks.list(
            project=ls_project_id, page=page, page_size=page_size, fields=fields, query=query, include=include
        ),
        what=f"the tasks of project {ls_project_id}",
        page_size=page_size,
        items_field="tasks",
        total_field="total",
        project_id=ls_project_id,
    )


def find_project_id(conn: Connection, title: str, *, page_size: int = 100) -> int | None:
    """The id of the project titled exactly `title`, or None (the listing is checked and bounded)."""
    pages = bounded_pages(
        conn,
        lambda page: conn.client.projects.list(title=title, page=page, page_size=page_size),
        what="projects",
        page_size=page_size,
        items_field="results",
        total_field="count",
    )
    for page in pages:
        for listed in page:
            if listed.get("title") == title:
                return int(listed["id"])
    return None
