"""Connecting to Label Studio and turning its failures into one sentence a curator can act on.

Both key kinds work: a legacy token is sent as ``Token KEY``; a personal access token (a JWT refresh token) is
detected by the SDK, exchanged and refreshed (``Bearer``). The key never appears in a message: errors are raised
``from None`` (no chained httpx request in tracebacks) and every message is scrubbed of the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annotator.errors import LabelStudioAuthError, LabelStudioProjectGone, LabelStudioUnavailable

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.pagination import SyncPager
    from label_studio_sdk.types.paginated_role_based_task_list import PaginatedRoleBasedTaskList
    from label_studio_sdk.types.role_based_task import RoleBasedTask

ENV_URL = "LABEL_STUDIO_URL"
ENV_KEY = "LABEL_STUDIO_API_KEY"
TIMEOUT_S = 120.0


@dataclass
class Connection:
    """An authenticated SDK client and the URL it talks to (the key is kept out of repr)."""

    url: str
    client: LabelStudio = field(repr=False)
    api_key: str = field(repr=False)
    user_id: int = 0

    @contextmanager
    def errors(self, *, project_id: int | None = None) -> Iterator[None]:
        """Map connection errors, 401/403 and (for `project_id`) 404 to user-facing errors."""
        with translate_errors(self.url, self.api_key, project_id=project_id):
            yield


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise LabelStudioUnavailable(f"the Label Studio URL {url!r} must start with http:// or https://")
    return url


def _scrub(text: str, api_key: str) -> str:
    return text.replace(api_key, "***") if api_key else text


@contextmanager
def translate_errors(url: str, api_key: str, *, project_id: int | None = None) -> Iterator[None]:
    """Turn httpx/SDK failures inside the block into LabelStudioUnavailable / AuthError / ProjectGone."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
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
        body = _scrub(str(exc.body), api_key)[:200]
        raise LabelStudioUnavailable(
            f"Label Studio at {url} answered HTTP {status} ({body}); is this the right --ls-url?"
        ) from None
    except httpx.TimeoutException:
        raise LabelStudioUnavailable(f"Label Studio at {url} did not answer in time; is it overloaded?") from None
    except (httpx.TransportError, httpx.InvalidURL, OSError):  # OSError: urllib's URLError (the /health probe)
        raise LabelStudioUnavailable(
            f"Label Studio is not reachable at {url}; is it running (python -m annotator.labelstudio.server "
            "start …) and is --ls-url / LABEL_STUDIO_URL right?"
        ) from None
    except ValueError as exc:  # JSON decoding of a non-Label-Studio answer (an HTML page at the wrong URL)
        raise LabelStudioUnavailable(
            f"the server at {url} does not answer like Label Studio ({_scrub(str(exc), api_key)[:120]}); check --ls-url"
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
    from label_studio_sdk import LabelStudio

    with translate_errors(url, api_key):
        client = LabelStudio(base_url=url, api_key=api_key, timeout=timeout_s)
        me: Any = client.users.whoami()
    user_id = int(getattr(me, "id", 0) or 0)
    if not user_id:
        raise LabelStudioUnavailable(f"the server at {url} does not answer like Label Studio; check --ls-url")
    return Connection(url=url, client=client, api_key=api_key, user_id=user_id)


def iter_task_pages(
    conn: Connection, ls_project_id: int, *, page_size: int, query: str | None = None, fields: str = "all"
) -> Iterator[list[dict[str, Any]]]:
    """Pages of a project's tasks as dicts. Stops at the last page (the SDK's pager asks one page too far: 404)."""
    page, seen = 1, 0
    pager: SyncPager[RoleBasedTask, PaginatedRoleBasedTaskList]
    while True:
        with conn.errors(project_id=ls_project_id):
            pager = conn.client.tasks.list(
                project=ls_project_id, page=page, page_size=page_size, fields=fields, query=query
            )
        items = [t if isinstance(t, dict) else t.model_dump() for t in (pager.items or [])]
        if items:
            yield items
        seen += len(items)
        total = getattr(pager.response, "total", None)
        if len(items) < page_size or (total is not None and seen >= int(total)):
            return
        page += 1
