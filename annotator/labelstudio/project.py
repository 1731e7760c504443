"""The Label Studio projects `ls push` fills: made or found by title, kept current, given their overlap, and
their tasks adopted when a push was killed between Label Studio creating them and the store recording them.

A project is made with the labelling config, the labelling instructions (shown before the first task) and the
review queue's sampling; a project made by an earlier version gets the current config and instructions on the
next push. Local-files storages let Label Studio serve the media dir's folders (images, clips, overlays).

Overlap (issue 14; verified against Label Studio 1.23.2, ``projects/models.py`` and ``tasks/serializers.py``):

* an imported task always gets the project's ``maximum_annotations`` as its ``overlap`` (a task's own ``overlap``
  in the import is ignored), and counts as labelled (``is_labeled``) once that many annotations are finished;
* with ``overlap_cohort_percentage`` 100, an import leaves every task's overlap alone; below 100, Label Studio
  reshuffles the overlapped share on every import, unseeded — so it is always set to 100 here;
* changing ``maximum_annotations`` sets the tasks whose overlap is > 1 to the new value, or every task when none
  is (or when the new value is 1); a task's overlap can be changed alone (``PATCH /api/tasks/<id>``).

So ``--overlap N`` sets the project to N (cohort 100) and a seeded share (``--overlap-fraction``) is made by
setting the other tasks to 1 one by one; whenever the project's N changes, every task of the project is brought
to what the options say (N, or 1 outside the share).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.errors import LabelStudioUnavailable
from annotator.labelstudio import config as lsconfig
from annotator.labelstudio.client import Connection, find_project_id, iter_task_pages
from annotator.labelstudio.queue import PATCH_WORKERS, UNCERTAINTY_SAMPLING
from annotator.store.models import LabelStudioProject, LabelStudioTask, Pair
from annotator.vocabulary import ProjectPurpose, TaskKind

SAMPLING = UNCERTAINTY_SAMPLING
#: Label Studio's overlap setting that leaves each task's overlap as set (below 100 it reshuffles, unseeded).
ALL_TASKS = 100


def project_instructions() -> str:
    """The labelling instructions (HTML), generated from the vocabulary (annotator.labelstudio.instructions)."""
    from annotator.labelstudio.instructions import project_instructions as generated

    return generated()


def ensure_project(
    session: Session, conn: Connection, title: str, purpose: ProjectPurpose, *, overlap: int | None = None
) -> LabelStudioProject:
    """The store's project row for (URL, title, purpose); reuses a Label Studio project of that title or makes one
    (with `overlap` annotations per task, default 1). Config and instructions are brought up to date.

    Raises:
        LabelStudioProjectGone: the store points at a project that was deleted in Label Studio.
    """
    if len(title.strip()) < 3:
        raise LabelStudioUnavailable(f"project title {title!r} is too short: Label Studio needs ≥ 3 characters")
    row = session.scalar(
        select(LabelStudioProject).where(
            LabelStudioProject.base_url == conn.url,
            LabelStudioProject.title == title,
            LabelStudioProject.purpose == purpose,
        )
    )
    if row is not None:
        keep_project_current(conn, row.ls_project_id)
        return row
    ls_project_id = _titled_project(conn, title, purpose, overlap)
    row = LabelStudioProject(base_url=conn.url, ls_project_id=ls_project_id, title=title, purpose=purpose)
    session.add(row)
    session.flush()
    return row


def _titled_project(conn: Connection, title: str, purpose: ProjectPurpose, overlap: int | None) -> int:
    """The id of the Label Studio project titled `title`, made (config, instructions, overlap) when there is none."""
    found = find_project_id(conn, title)
    if found is not None:
        keep_project_current(conn, found)
        return found
    with conn.errors():
        created = conn.client.projects.create(
            title=title,
            label_config=lsconfig.labelling_config(),
            expert_instruction=project_instructions(),
            show_instruction=True,
            sampling=SAMPLING,
            show_skip_button=True,
            maximum_annotations=overlap or 1,
            overlap_cohort_percentage=ALL_TASKS,
            description=f"annotator {purpose} project: verify the OSM scene class of each pair",
        )
    if created.id is None:
        raise LabelStudioUnavailable(f"Label Studio at {conn.shown_url} created project {title!r} without an id")
    return int(created.id)


def keep_project_current(conn: Connection, ls_project_id: int) -> None:
    """Give a project made by an earlier version the current labelling config and instructions (shown first)."""
    with conn.errors(project_id=ls_project_id):
        remote = conn.client.projects.get(id=ls_project_id)
    changes: dict[str, Any] = {}
    current = getattr(remote, "label_config", None)
    if current and current != lsconfig.labelling_config():
        changes["label_config"] = lsconfig.labelling_config()
    instructions = project_instructions()
    if getattr(remote, "expert_instruction", None) != instructions:
        changes["expert_instruction"] = instructions
    if getattr(remote, "show_instruction", None) is not True:
        changes["show_instruction"] = True
    if changes:
        with conn.errors(project_id=ls_project_id):
            conn.client.projects.update(id=ls_project_id, **changes)


def ensure_local_storage(conn: Connection, ls_project_id: int, media_dir: Path, folders: set[str]) -> None:
    """Attach local-files import storages covering `folders` of the media dir (needed for /data/local-files/ URLs).

    Label Studio refuses a storage at the document root itself, so there is one per top folder (images, clips,
    overlays).
    """
    from label_studio_sdk.core.api_error import ApiError  # the SDK takes ~1 s to import

    storage = conn.client.import_storage.local
    with conn.errors(project_id=ls_project_id):
        existing = {getattr(s, "path", None) for s in storage.list(project=ls_project_id)}
    for folder in sorted(folders):
        path = str(media_dir / folder)
        if path in existing:
            continue
        try:
            storage.create(project=ls_project_id, path=path, use_blob_urls=True, title=f"annotator {folder}")
        except ApiError as exc:
            if exc.status_code != 400:
                with conn.errors(project_id=ls_project_id):
                    raise
            raise LabelStudioUnavailable(
                f"Label Studio at {conn.shown_url} cannot serve files from {path}: its "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT must be the media dir or a parent of it, with "
                "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true (`annotator ls serve` starts one so), and "
                "--ls-files-root must name the same folder; or pass --media-base-url"
            ) from None


@dataclass
class OverlapSetting:
    """The project's annotations per task, and what changing it did to the tasks pushed before."""

    overlap: int = 1  # the project's maximum_annotations: what every task imported now gets
    changed_from: int | None = None  # the value before this push changed it
    tasks_updated: int = 0  # tasks pushed before whose overlap was set (by Label Studio or here) to the options'


def set_project_overlap(
    session: Session,
    conn: Connection,
    project: LabelStudioProject,
    overlap: int | None,
    wanted: Callable[[int], int],
) -> OverlapSetting:
    """Set the project to `overlap` annotations per task (None: leave it as it is) for all tasks (cohort 100).

    When that changes the project, every task pushed before is brought to ``wanted(pair_id)`` (N, or 1 outside a
    seeded share), in Label Studio and in the store.
    """
    ls_project_id = project.ls_project_id
    with conn.errors(project_id=ls_project_id):
        remote = conn.client.projects.get(id=ls_project_id)
    current = int(getattr(remote, "maximum_annotations", None) or 1)
    if overlap is None:
        return OverlapSetting(overlap=current)
    changes: dict[str, Any] = {}
    if current != overlap:
        changes["maximum_annotations"] = overlap
    if getattr(remote, "overlap_cohort_percentage", ALL_TASKS) != ALL_TASKS:
        changes["overlap_cohort_percentage"] = ALL_TASKS
    if not changes:
        return OverlapSetting(overlap=overlap)
    with conn.errors(project_id=ls_project_id):
        conn.client.projects.update(id=ls_project_id, **changes)
    setting = OverlapSetting(overlap=overlap, changed_from=current)
    setting.tasks_updated = _bring_tasks_to(session, conn, project, wanted)
    return setting


def _bring_tasks_to(
    session: Session, conn: Connection, project: LabelStudioProject, wanted: Callable[[int], int]
) -> int:
    """Set each of the project's tasks (made by this store) to its wanted overlap; record them all in the store."""
    rows = {
        row.ls_task_id: row
        for row in session.scalars(select(LabelStudioTask).where(LabelStudioTask.project_id == project.id))
    }
    if not rows:
        return 0
    remote: dict[int, int] = {}
    for page in iter_task_pages(conn, project.ls_project_id, page_size=1000, fields="task_only", include="id,overlap"):
        remote.update({int(t["id"]): int(t.get("overlap") or 1) for t in page})
    patches = {task_id: wanted(row.pair_id) for task_id, row in rows.items() if task_id in remote}
    patches = {task_id: n for task_id, n in patches.items() if remote[task_id] != n}
    set_task_overlaps(conn, patches)
    for task_id, row in rows.items():
        if task_id in remote:
            row.overlap = patches.get(task_id, remote[task_id])
    return sum(1 for task_id in rows if task_id in remote)


def set_task_overlaps(conn: Connection, overlaps: dict[int, int]) -> None:
    """Set tasks' overlap one PATCH each (Label Studio has no bulk form), a few requests at a time."""

    def patch(item: tuple[int, int]) -> None:
        with conn.errors():
            conn.client.tasks.update(id=str(item[0]), overlap=item[1])

    if overlaps:
        with ThreadPoolExecutor(max_workers=PATCH_WORKERS) as pool:
            list(pool.map(patch, overlaps.items()))


#: Task ``meta`` keys (never shown to the annotator, unlike task data) marking a control task and a blind one, so a
#: push killed after importing them adopts them as what they are.
META_KIND = "annotator_kind"
META_BLIND = "annotator_blind"


def _made_for(task_data: dict[str, Any], pair: Pair | None) -> bool:
    """Whether a task was made for this very pair (same media), not for another store's pair of that id."""
    if pair is None or not pair.image_path:
        return False
    return str(task_data.get(lsconfig.IMAGE, "")).endswith(quote(pair.image_path))


def _kind_of(task: dict[str, Any]) -> TaskKind:
    meta = task.get("meta") or {}
    return TaskKind.CONTROL if isinstance(meta, dict) and meta.get(META_KIND) == TaskKind.CONTROL else TaskKind.REVIEW


def adopt_orphan_tasks(session: Session, conn: Connection, project: LabelStudioProject) -> int:
    """Record tasks that exist in Label Studio but not in the store (a push killed after import, before commit)."""
    with conn.errors(project_id=project.ls_project_id):
        remote = conn.client.projects.get(id=project.ls_project_id)
    of_project = LabelStudioTask.project_id == project.id
    known = session.scalar(select(func.count()).where(of_project)) or 0
    if int(getattr(remote, "task_number", 0) or 0) <= known:
        return 0
    recorded = set(session.scalars(select(LabelStudioTask.ls_task_id).where(of_project)))
    have = {(p, k) for p, k in session.execute(select(LabelStudioTask.pair_id, LabelStudioTask.kind).where(of_project))}
    overlap = int(getattr(remote, "maximum_annotations", None) or 1)
    adopted = 0
    pages = iter_task_pages(
        conn,
        project.ls_project_id,
        page_size=1000,
        fields="task_only",
        include="id,data,meta,overlap",
    )
    for page in pages:
        for task in page:
            data = task.get("data") or {}
            pair_id, kind = data.get("pair_id"), _kind_of(task)
            if task["id"] in recorded or not isinstance(pair_id, int) or (pair_id, kind) in have:
                continue
            if not _made_for(data, session.get(Pair, pair_id)):
                continue
            session.add(
                LabelStudioTask(
                    project_id=project.id,
                    pair_id=pair_id,
                    ls_task_id=int(task["id"]),
                    kind=kind,
                    preselected=not (task.get("meta") or {}).get(META_BLIND),
                    overlap=int(task.get("overlap") or overlap),
                )
            )
            have.add((pair_id, kind))
            adopted += 1
    return adopted
