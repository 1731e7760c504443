#!/usr/bin/env python
"""Two simulated annotators label a pushed Label Studio project through the SDK (the demo's review step).

* **careful** labels what the ground shows: the demo world's true class of the pair's cell
  (:mod:`annotator.demo.world`; ``unusable`` on land no class fits), with a small seeded error rate, taking
  8–25 s a task;
* **sloppy** accepts the suggestion: the OSM class whenever the task was pushed with it pre-selected (97 % of
  the time), and on a blind task (``ls push --blind-fraction``) the true class 70 % of the time, taking 2–4 s.

Both label every task of the review project they have not labelled yet (control items included), so a project
pushed with ``--overlap 2`` gets its two verdicts per task; rerunning adds nothing. A control item
(``ls push --control-fraction``) serves a pair both of them settled, so it can only measure someone else: with
``--newcomer`` a third annotator (careful, 10 % slips) labels the control items, and only those. With
``--adjudicate`` the careful annotator also settles the conflicts pushed to ``"<title> – adjudication"``. The Label
Studio users are created when missing. Label Studio's URL and key come from ``LABEL_STUDIO_URL`` /
``LABEL_STUDIO_API_KEY`` (never printed), the store from ``--db`` / ``ANNOTATOR_DB`` (for each pair's position,
the OSM class, whether its task was pre-selected and whether it is a control item). Then ``annotator ls pull``
and ``annotator status`` / ``annotator report`` show the figures.

Example:
    set -a; source demo-run/label-studio.env; set +a; export ANNOTATOR_DB=demo-run/annotator.db
    annotator ls push --project "annotator demo" --overlap 2 --blind-fraction 0.3
    .venv/bin/python scripts/simulate_annotators.py --project "annotator demo"
    annotator ls pull && annotator ls push --project "annotator demo" --control-fraction 0.3
    .venv/bin/python scripts/simulate_annotators.py --project "annotator demo" --newcomer --adjudicate
    annotator ls pull && annotator status && annotator report review-report.html
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from annotator.config import resolve_store  # noqa: E402
from annotator.demo.world import cell_at  # noqa: E402
from annotator.errors import AnnotatorError  # noqa: E402
from annotator.labelstudio import config as lsconfig  # noqa: E402
from annotator.labelstudio.client import connect, find_project_id, iter_task_pages  # noqa: E402
from annotator.labelstudio.push import ADJUDICATION_SUFFIX  # noqa: E402
from annotator.store.engine import open_store, session_scope  # noqa: E402
from annotator.store.models import LabelStudioTask, OsmEvidence, Pair  # noqa: E402
from annotator.vocabulary import CLASS_ORDER, TaskKind, Verdict  # noqa: E402

VERDICTS = [c.value for c in CLASS_ORDER] + [Verdict.UNUSABLE.value]


@dataclass(frozen=True)
class PairFacts:
    truth: str  # the class the ground shows, or "unusable"
    osm: str | None
    preselected: bool
    control: bool


@dataclass(frozen=True)
class Persona:
    """How one simulated annotator decides and how long it takes."""

    name: str
    email: str
    seconds: tuple[float, float]

    def decide(self, facts: PairFacts, rng: random.Random) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Careful(Persona):
    error_rate: float = 0.05

    def decide(self, facts: PairFacts, rng: random.Random) -> str:
        return rng.choice(VERDICTS) if rng.random() < self.error_rate else facts.truth


@dataclass(frozen=True)
class Sloppy(Persona):
    accept_rate: float = 0.97
    blind_accuracy: float = 0.7

    def decide(self, facts: PairFacts, rng: random.Random) -> str:
        if facts.preselected and facts.osm is not None:
            return facts.osm if rng.random() < self.accept_rate else rng.choice(VERDICTS)
        return facts.truth if rng.random() < self.blind_accuracy else rng.choice(VERDICTS)


PERSONAS: tuple[Persona, ...] = (
    Careful("careful", "careful.annotator@example.com", (8.0, 25.0)),
    Sloppy("sloppy", "sloppy.annotator@example.com", (2.0, 4.0)),
)
#: Labels control items only (``--newcomer``): the one annotator they can measure when two label everything.
NEWCOMER = Careful("newcomer", "newcomer.annotator@example.com", (10.0, 20.0), error_rate=0.1)


@dataclass
class Tally:
    labelled: dict[str, int] = field(default_factory=dict)
    already: dict[str, int] = field(default_factory=dict)


def _facts(db: str | None, project_tasks: dict[int, int]) -> dict[int, PairFacts]:
    """Label Studio task id → what the simulated annotators know about its pair (from the store)."""
    engine = open_store(resolve_store(db))
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                select(
                    LabelStudioTask.ls_task_id,
                    LabelStudioTask.preselected,
                    LabelStudioTask.kind,
                    Pair.lat,
                    Pair.lon,
                    OsmEvidence.label,
                )
                .join(Pair, Pair.id == LabelStudioTask.pair_id)
                .outerjoin(OsmEvidence, OsmEvidence.pair_id == Pair.id)
                .where(LabelStudioTask.ls_task_id.in_(list(project_tasks)))
            ).all()
    finally:
        engine.dispose()
    facts = {}
    for task_id, preselected, kind, lat, lon, osm in rows:
        cell = cell_at(lat, lon)
        truth = cell.truth.value if cell is not None and cell.truth is not None else Verdict.UNUSABLE.value
        facts[int(task_id)] = PairFacts(
            truth=truth, osm=osm, preselected=bool(preselected), control=kind == TaskKind.CONTROL
        )
    return facts


def simulate(
    url: str,
    api_key: str,
    project_title: str,
    *,
    db: str | None,
    seed: int,
    limit: int | None,
    newcomer: bool = False,
    adjudicate: bool = False,
) -> Tally:
    """Label every task of the project once per persona (tasks they already labelled are left alone); with
    `newcomer`, the newcomer labels the control items too; with `adjudicate`, the careful annotator labels the
    adjudication project's tasks."""
    conn = connect(url, api_key)
    project_id = find_project_id(conn, project_title)
    if project_id is None:
        raise AnnotatorError(f"no Label Studio project titled {project_title!r}; push first (annotator ls push)")
    personas = (*PERSONAS, NEWCOMER) if newcomer else PERSONAS
    with conn.errors():
        users = {str(u.email): int(u.id) for u in conn.client.users.list() if u.email and u.id is not None}
    for persona in personas:
        if persona.email not in users:
            with conn.errors():
                user = conn.client.users.create(
                    username=persona.email, email=persona.email, first_name=persona.name.capitalize()
                )
            users[persona.email] = int(user.id)
    rounds: list[tuple[int, tuple[Persona, ...]]] = [(project_id, personas)]
    if adjudicate:
        adjudication_id = find_project_id(conn, project_title + ADJUDICATION_SUFFIX)
        if adjudication_id is not None:  # no conflict was pushed yet: nothing to adjudicate
            rounds.append((adjudication_id, (PERSONAS[0],)))
    rng = random.Random(seed)
    tally = Tally()
    for ls_project, who in rounds:
        tasks = [t for page in iter_task_pages(conn, ls_project, page_size=500) for t in page]
        facts = _facts(db, {int(t["id"]): 0 for t in tasks})
        for task in sorted(tasks, key=lambda t: int(t["id"]))[:limit]:
            known = facts.get(int(task["id"]))
            if known is None:
                continue  # a task the store never pushed
            done_by = {_user_id(a.get("completed_by")) for a in task.get("annotations") or []}
            for persona in who:
                if persona is NEWCOMER and not known.control:
                    continue
                user = users[persona.email]
                if user in done_by:
                    tally.already[persona.name] = tally.already.get(persona.name, 0) + 1
                    continue
                verdict = persona.decide(known, rng)
                with conn.errors(project_id=ls_project):
                    conn.client.annotations.create(
                        id=int(task["id"]),
                        result=lsconfig.annotation_result(verdict),
                        completed_by=user,
                        lead_time=round(rng.uniform(*persona.seconds), 1),
                    )
                tally.labelled[persona.name] = tally.labelled.get(persona.name, 0) + 1
    return tally


def _user_id(completed_by: object) -> object:
    """A task listing names the annotator by id, or by a user object."""
    return completed_by.get("id") if isinstance(completed_by, dict) else completed_by


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example:" + __doc__.split("Example:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--project", required=True, help="Title of the Label Studio review project.")
    parser.add_argument("--db", default=os.environ.get("ANNOTATOR_DB"), help="The store [default: $ANNOTATOR_DB].")
    parser.add_argument("--seed", type=int, default=7, help="Seeds the annotators' choices and times.")
    parser.add_argument("--limit", type=int, default=None, help="Label only the first N tasks (by task id).")
    parser.add_argument("--newcomer", action="store_true", help="A third annotator labels the control items.")
    parser.add_argument(
        "--adjudicate", action="store_true", help="The careful annotator settles the conflicts (adjudication project)."
    )
    args = parser.parse_args(argv)
    try:
        tally = simulate(
            os.environ.get("LABEL_STUDIO_URL", ""),
            os.environ.get("LABEL_STUDIO_API_KEY", ""),
            args.project,
            db=args.db,
            seed=args.seed,
            limit=args.limit,
            newcomer=args.newcomer,
            adjudicate=args.adjudicate,
        )
    except AnnotatorError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    for persona in (*PERSONAS, NEWCOMER) if args.newcomer else PERSONAS:
        print(
            f"{persona.name} ({persona.email}): labelled {tally.labelled.get(persona.name, 0)} tasks now, "
            f"{tally.already.get(persona.name, 0)} already labelled",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
