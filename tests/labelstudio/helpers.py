"""Acting in Label Studio as annotators would, through the admin token (tests and benchmark)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, func, inspect, select, text

from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.client import Connection, iter_task_pages
from annotator.store.engine import session_scope
from annotator.store.models import LabelStudioProject, LabelStudioTask
from annotator.vocabulary import ProjectPurpose


def make_annotator(conn: Connection, name: str) -> tuple[int, str]:
    """Create a Label Studio user; returns (id, email)."""
    email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
    user = conn.client.users.create(username=email, email=email, first_name=name)
    return int(user.id), email


def annotate(conn: Connection, task_id: int, verdict: str | None, user_id: int, comment: str | None = None) -> int:
    """Create an annotation choosing `verdict` (None: a skip); returns the annotation id."""
    if verdict is None:
        ann = conn.client.annotations.create(id=task_id, result=[], was_cancelled=True, completed_by=user_id)
    else:
        ann = conn.client.annotations.create(
            id=task_id, result=lsconfig.annotation_result(verdict, comment), completed_by=user_id
        )
    return int(ann.id)


def remote_tasks(conn: Connection, ls_project_id: int) -> list[dict[str, Any]]:
    """Every task of a Label Studio project, with annotations and predictions."""
    return [t for page in iter_task_pages(conn, ls_project_id, page_size=1000) for t in page]


def task_ids_by_pair(engine: Engine, purpose: ProjectPurpose = ProjectPurpose.REVIEW) -> dict[int, int]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(LabelStudioTask.pair_id, LabelStudioTask.ls_task_id)
            .join(LabelStudioProject, LabelStudioProject.id == LabelStudioTask.project_id)
            .where(LabelStudioProject.purpose == purpose)
        )
        return {pair: task for pair, task in rows}


def ls_project_id(engine: Engine, purpose: ProjectPurpose = ProjectPurpose.REVIEW) -> int:
    with session_scope(engine) as session:
        value = session.scalar(select(LabelStudioProject.ls_project_id).where(LabelStudioProject.purpose == purpose))
        assert value is not None
        return int(value)


def store_snapshot(engine: Engine) -> dict[str, Any]:
    """Row counts and full content of every table: equal snapshots mean an untouched store."""
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        return {
            table: (
                connection.execute(select(func.count()).select_from(text(f'"{table}"'))).scalar(),
                sorted(map(tuple, connection.execute(text(f'SELECT * FROM "{table}"')).all()), key=repr),
            )
            for table in sorted(tables)
        }


_TOKENS: dict[tuple[str, str], str] = {}


def personal_access_token(url: str, email: str, password: str) -> str:
    """The user's personal access token (a JWT refresh token), created once per server through the web form.

    Label Studio gives a user one such token (a second request answers 409), so it is kept for the next test
    that asks on the same server (the store-backend variants of one test share the server).
    """
    if (url, email) not in _TOKENS:
        _TOKENS[(url, email)] = _create_personal_access_token(url, email, password)
    return _TOKENS[(url, email)]


def _create_personal_access_token(url: str, email: str, password: str) -> str:
    import httpx

    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as web:
        web.get("/user/login/")
        form = {"email": email, "password": password, "csrfmiddlewaretoken": web.cookies.get("csrftoken")}
        web.post("/user/login/", data=form, headers={"Referer": f"{url}/user/login/"})
        answer = web.post("/api/token/", headers={"X-CSRFToken": web.cookies.get("csrftoken"), "Referer": f"{url}/"})
        answer.raise_for_status()
        return str(answer.json()["token"])
