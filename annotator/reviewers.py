"""How far the reviewers can be trusted: per-annotator figures, agreement and the anchoring effect (issue 14).

Read-only, from the store's reviews. Which verdicts count:

* **current** reviews only: not retracted, the newest version of each Label Studio annotation (as for final
  labels, :mod:`annotator.review`); skips are left out of every figure but the count of skips;
* **accept rate** = accepted / (accepted + corrected): of the verdicts that chose a *class* on a pair whose OSM
  evidence names a class, the share that chose the OSM class (``unusable`` says nothing about the class and is
  left out). It is measured against the pair's OSM class, so tasks pushed blind (without the pre-selected
  suggestion) count too;
* **accuracy on control items**: a control item (``LabelStudioTask.kind == control``) serves a pair whose label is
  settled again; the verdict is correct when it equals the pair's final label (a human one: not ``osm_only``,
  not a conflict). An annotator's control verdict on a pair *they* already reviewed is left out (they would be
  graded against their own vote);
* **median seconds per task**: Label Studio's ``lead_time`` of each current annotation (skips included);
* **agreement** uses the review projects only (an adjudicator sees the conflicting verdicts, so adjudication
  verdicts are not independent): the unit is a pair, each annotator's current class/unusable verdict on it
  (review or control task, the newest when both). Cohen's kappa (scikit-learn) for every two annotators on the
  pairs they both labelled; Krippendorff's alpha (the ``krippendorff`` package, nominal) over all of them;
* **anchoring**: the OSM-accept rate (as above) on tasks pushed with the suggestion pre-selected versus tasks
  pushed blind (``LabelStudioTask.preselected``), each with a 95 % Wilson score interval, and their difference
  with Newcombe's hybrid score interval (method 10 of Newcombe 1998), review projects only.

Every figure is None where there is nothing to compute it from.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from typing import Any, NamedTuple

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session, aliased

from annotator.store.models import LabelStudioProject, LabelStudioTask, OsmEvidence, Pair, Review
from annotator.vocabulary import FinalReason, ProjectPurpose, TaskKind, Verdict

#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054

#: Final reasons of a settled (human) label a control verdict is graded against.
SETTLED = frozenset({FinalReason.SINGLE_REVIEW, FinalReason.MAJORITY})


# ------------------------------------------------------------------------------------------ interval maths


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval of a proportion (95 % by default); None when n is 0.

    >>> tuple(round(x, 4) for x in wilson_interval(8, 10))
    (0.4902, 0.9433)
    """
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval (method 10) of p1 − p2 from two Wilson intervals; None if n1 or n2 is 0.

    >>> tuple(round(x, 4) for x in newcombe_interval(56, 70, 48, 80))
    (0.0524, 0.3339)
    """
    first, second = wilson_interval(x1, n1, z), wilson_interval(x2, n2, z)
    if first is None or second is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = first, second
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


# ------------------------------------------------------------------------------------------ agreement maths


def cohen_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two raters over the same items (scikit-learn); None when undefined (fewer than 2 items,
    or both raters used one and the same value throughout)."""
    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    if len(first) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(first, second))
    return None if math.isnan(value) else value


def krippendorff_alpha(units: list[dict[str, str]]) -> float | None:
    """Krippendorff's alpha (nominal) of units rated by any subset of raters (unit: rater → value).

    Uses the ``krippendorff`` package; None when no unit has two ratings or only one value was ever used.
    """
    pairable = [unit for unit in units if len(unit) >= 2]
    values = sorted({value for unit in pairable for value in unit.values()})
    if not pairable or len(values) < 2:
        return None
    import krippendorff
    import numpy as np

    raters = sorted({rater for unit in pairable for rater in unit})
    code = {value: float(i) for i, value in enumerate(values)}
    data = np.full((len(raters), len(pairable)), np.nan)
    for column, unit in enumerate(pairable):
        for rater, value in unit.items():
            data[raters.index(rater), column] = code[value]
    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return None if math.isnan(alpha) else alpha


# ------------------------------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Rate:
    """A proportion with its 95 % Wilson interval (None without any item)."""

    successes: int
    n: int

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.n)

    def to_json(self) -> dict[str, Any]:
        low_high = self.interval
        return {
            "successes": self.successes,
            "n": self.n,
            "rate": self.value,
            "ci95": list(low_high) if low_high else None,
        }


@dataclass
class AnnotatorFigures:
    """One annotator's figures (see the module docstring for what counts)."""

    annotator: str
    reviews: int  # current verdicts that are not skips (control and adjudication included)
    skipped: int
    accepted: int
    corrected: int
    unusable: int
    control_n: int  # control verdicts graded
    control_correct: int
    median_seconds: float | None  # of Label Studio's lead time per task
    timed: int  # current annotations with a lead time

    @property
    def accept_rate(self) -> float | None:
        decided = self.accepted + self.corrected
        return self.accepted / decided if decided else None

    @property
    def control_accuracy(self) -> float | None:
        return self.control_correct / self.control_n if self.control_n else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "accept_rate": self.accept_rate, "control_accuracy": self.control_accuracy}


@dataclass(frozen=True)
class PairwiseKappa:
    """Cohen's kappa of two annotators on the pairs they both labelled."""

    first: str
    second: str
    shared: int  # pairs both labelled
    agreed: int  # of those, with the same verdict
    kappa: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AnchoringFigure:
    """The OSM-accept rate with the suggestion pre-selected and without (blind), and their difference."""

    preselected: Rate
    blind: Rate

    @property
    def difference(self) -> float | None:
        a, b = self.preselected.value, self.blind.value
        return a - b if a is not None and b is not None else None

    @property
    def difference_interval(self) -> tuple[float, float] | None:
        return newcombe_interval(self.preselected.successes, self.preselected.n, self.blind.successes, self.blind.n)

    def to_json(self) -> dict[str, Any]:
        low_high = self.difference_interval
        return {
            "preselected": self.preselected.to_json(),
            "blind": self.blind.to_json(),
            "difference": self.difference,
            "difference_ci95": list(low_high) if low_high else None,
        }


@dataclass
class ReviewerFigures:
    """Everything `status` and `report` say about the reviewers."""

    annotators: list[AnnotatorFigures] = field(default_factory=list)
    alpha: float | None = None  # Krippendorff's alpha, nominal, over the review projects' current verdicts
    alpha_units: int = 0  # pairs with at least two annotators' verdicts (the ones alpha is computed on)
    kappa: list[PairwiseKappa] = field(default_factory=list)
    anchoring: AnchoringFigure | None = None
    control_excluded_own: int = 0  # control verdicts left out: the annotator had reviewed the pair already

    def to_json(self) -> dict[str, Any]:
        return {
            "annotators": [a.to_json() for a in self.annotators],
            "agreement": {
                "krippendorff_alpha": self.alpha,
                "alpha_units": self.alpha_units,
                "cohen_kappa": [k.to_json() for k in self.kappa],
            },
            "anchoring": self.anchoring.to_json() if self.anchoring is not None else None,
            "control_excluded_own": self.control_excluded_own,
        }


class _Verdict(NamedTuple):
    """A current review (plain columns: status reads tens of thousands) with its task's and pair's facts."""

    id: int
    pair_id: int
    annotator: str
    verdict: str
    lead_time_s: float | None
    stamp: datetime  # the version's updated_at (or created_at, or when it was pulled)
    control: bool
    review_project: bool  # False: an adjudication project's
    preselected: bool | None  # None: the store has no task row for it
    osm_label: str | None
    final_label: str | None
    final_reason: FinalReason | None

    @property
    def is_class(self) -> bool:
        return self.verdict not in (Verdict.SKIPPED, Verdict.UNUSABLE)


def _current(session: Session) -> list[_Verdict]:
    """Every current review (newest version of each annotation, not retracted), in id order, in one query."""
    task = aliased(LabelStudioTask)
    rows = session.execute(
        select(
            Review.id,
            Review.ls_annotation_id,
            Review.pair_id,
            Review.annotator,
            Review.verdict,
            Review.lead_time_s,
            func.coalesce(Review.ls_updated_at, Review.ls_created_at, Review.pulled_at),
            type_coerce(task.kind, String),  # plain strings: no enum per row (status reads tens of thousands)
            task.preselected,
            type_coerce(LabelStudioProject.purpose, String),
            OsmEvidence.label,
            Pair.final_label,
            type_coerce(Pair.final_reason, String),
        )
        .join(Pair, Pair.id == Review.pair_id)
        .outerjoin(OsmEvidence, OsmEvidence.pair_id == Review.pair_id)
        .outerjoin(task, (task.project_id == Review.project_id) & (task.ls_task_id == Review.ls_task_id))
        .outerjoin(LabelStudioProject, LabelStudioProject.id == Review.project_id)
        .where(Review.retracted_at.is_(None))
    ).all()
    latest: dict[int, tuple[tuple[datetime, int], Any]] = {}  # annotation → (its newest version's stamp, row)
    for row in rows:
        key = (_utc(row[6]), int(row[0]))
        held = latest.get(row[1])
        if held is None or key > held[0]:
            latest[row[1]] = (key, row)
    out = []
    for (stamp, _), row in sorted(latest.values(), key=lambda item: item[0][1]):
        review_id, _, pair_id, annotator, verdict, lead, _, kind, pre, purpose, osm, final, reason = row
        out.append(
            _Verdict(
                id=int(review_id),
                pair_id=int(pair_id),
                annotator=str(annotator),
                verdict=str(verdict),
                lead_time_s=lead,
                stamp=stamp,
                control=kind == TaskKind.CONTROL,
                review_project=purpose != ProjectPurpose.ADJUDICATION,
                preselected=None if pre is None else bool(pre),
                osm_label=osm,
                final_label=final,
                final_reason=None if reason is None else FinalReason(reason),
            )
        )
    return out


def _utc(value: Any) -> datetime:
    """A coalesced timestamp as aware UTC (the coalesce bypasses the column type: naive, or a string on SQLite)."""
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _annotator_figures(verdicts: list[_Verdict]) -> tuple[list[AnnotatorFigures], int]:
    by_annotator: dict[str, list[_Verdict]] = defaultdict(list)
    for verdict in verdicts:
        by_annotator[verdict.annotator].append(verdict)
    # Pairs each annotator voted on outside control tasks: their control verdicts there are not graded.
    own_pairs = {(v.annotator, v.pair_id) for v in verdicts if not v.control}
    figures, excluded = [], 0
    for name in sorted(by_annotator):
        mine = by_annotator[name]
        decided = [v for v in mine if v.verdict != Verdict.SKIPPED]
        on_osm = [v for v in decided if v.is_class and v.osm_label is not None]
        graded = []
        for v in decided:
            if not v.control or v.final_label is None or v.final_reason not in SETTLED:
                continue
            if (name, v.pair_id) in own_pairs:
                excluded += 1
                continue
            graded.append(v)
        times = [v.lead_time_s for v in mine if v.lead_time_s is not None]
        figures.append(
            AnnotatorFigures(
                annotator=name,
                reviews=len(decided),
                skipped=len(mine) - len(decided),
                accepted=sum(v.verdict == v.osm_label for v in on_osm),
                corrected=sum(v.verdict != v.osm_label for v in on_osm),
                unusable=sum(v.verdict == Verdict.UNUSABLE for v in decided),
                control_n=len(graded),
                control_correct=sum(v.verdict == v.final_label for v in graded),
                median_seconds=float(statistics.median(times)) if times else None,
                timed=len(times),
            )
        )
    return figures, excluded


def _agreement_units(verdicts: list[_Verdict]) -> dict[int, dict[str, str]]:
    """Pair → annotator → their newest current class/unusable verdict in a review project."""
    newest: dict[tuple[int, str], _Verdict] = {}
    for v in verdicts:
        if not v.review_project or v.verdict == Verdict.SKIPPED:
            continue
        key = (v.pair_id, v.annotator)
        held = newest.get(key)
        if held is None or (v.stamp, v.id) > (held.stamp, held.id):
            newest[key] = v
    units: dict[int, dict[str, str]] = defaultdict(dict)
    for (pair_id, annotator), v in sorted(newest.items()):
        units[pair_id][annotator] = v.verdict
    return units


def _kappas(units: dict[int, dict[str, str]]) -> list[PairwiseKappa]:
    raters = sorted({rater for unit in units.values() for rater in unit})
    out = []
    for first, second in combinations(raters, 2):
        shared = [(u[first], u[second]) for u in units.values() if first in u and second in u]
        if not shared:
            continue
        a, b = [x for x, _ in shared], [y for _, y in shared]
        out.append(
            PairwiseKappa(
                first=first,
                second=second,
                shared=len(shared),
                agreed=sum(x == y for x, y in shared),
                kappa=cohen_kappa(a, b),
            )
        )
    return out


def _anchoring(verdicts: list[_Verdict]) -> AnchoringFigure | None:
    counts = {True: [0, 0], False: [0, 0]}  # preselected → [accepted, n]
    for v in verdicts:
        if not v.review_project or v.preselected is None or not v.is_class or v.osm_label is None:
            continue
        tally = counts[v.preselected]
        tally[0] += v.verdict == v.osm_label
        tally[1] += 1
    if counts[True][1] == 0 and counts[False][1] == 0:
        return None
    return AnchoringFigure(preselected=Rate(*counts[True]), blind=Rate(*counts[False]))


def reviewer_figures(session: Session) -> ReviewerFigures:
    """Per-annotator figures, agreement and anchoring from the store's current reviews (module docstring)."""
    verdicts = _current(session)
    annotators, excluded = _annotator_figures(verdicts)
    units = _agreement_units(verdicts)
    return ReviewerFigures(
        annotators=annotators,
        alpha=krippendorff_alpha(list(units.values())),
        alpha_units=sum(len(unit) >= 2 for unit in units.values()),
        kappa=_kappas(units),
        anchoring=_anchoring(verdicts),
        control_excluded_own=excluded,
    )
