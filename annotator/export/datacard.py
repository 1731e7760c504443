"""The facts of an export's data card, gathered from its samples and the store (rendered by :mod:`dataset.datacard`).

Everything comes from the exported samples (which carry their recording's licence, author and source URL, their
pair's OSM evidence source and imagery source) and from the store's reviews (the annotator agreement of
:func:`annotator.reviewers.reviewer_figures`), never from the clock, so a re-export writes the same card.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from annotator.export.samples import ExportSample
from annotator.reviewers import reviewer_figures
from annotator.vocabulary import PairOrigin, SceneClass
from dataset.datacard import Agreement, Attribution, CardFacts, CorrectionMatrix, SourceUse, public_source
from dataset.split import Split, SplitPlan

#: The correction matrix's row for pairs OSM gave no class (as in `annotator status`).
NONE_LABEL = "none"


def _originals(samples: Sequence[ExportSample]) -> list[ExportSample]:
    return [s for s in samples if s.origin == PairOrigin.ORIGINAL]


def attribution_rows(samples: Sequence[ExportSample]) -> list[Attribution]:
    """One row per exported recording (sorted by its export id), with the samples it gave."""
    per_recording = Counter(s.recording for s in samples)
    rows: dict[str, Attribution] = {}
    for s in samples:
        if s.recording not in rows:
            p = s.parent
            rows[s.recording] = Attribution(
                recording=s.recording,
                source_id=p.source_id,
                author=p.author or "",
                license=p.license or "",
                source_url=p.source_url or "",
                samples=per_recording[s.recording],
            )
    return [rows[r] for r in sorted(rows)]


def _uses(keys: Sequence[tuple[str, str]]) -> list[SourceUse]:
    """(source, date) keys counted, most pairs first, then by name."""
    counts = Counter(keys)
    return [SourceUse(source, date, n) for (source, date), n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))]


def correction_matrix(originals: Sequence[ExportSample]) -> CorrectionMatrix:
    """OSM suggestion (or none) against the human label of the exported originals a person reviewed."""
    rows = [c.value for c in SceneClass] + [NONE_LABEL]
    columns = [c.value for c in SceneClass]
    counts = [[0] * len(columns) for _ in rows]
    for s in originals:
        human = s.parent.human_label
        if human in columns:
            osm = s.parent.osm_label if s.parent.osm_label in rows else NONE_LABEL
            counts[rows.index(osm)][columns.index(human)] += 1
    return CorrectionMatrix(rows, columns, counts)


def _agreement(session: Session) -> Agreement:
    figures = reviewer_figures(session)
    return Agreement(annotators=len(figures.annotators), alpha=figures.alpha, alpha_units=figures.alpha_units)


def card_facts(
    session: Session,
    samples: Sequence[ExportSample],
    plan: SplitPlan,
    *,
    tool_version: str,
    parameters: Mapping[str, Any],
    dropped: Mapping[str, int],
    augmented: Sequence[str],
    skipped: Mapping[str, int],
    footprint_side_m: float,
) -> CardFacts:
    """Everything the data card of these exported `samples` says (see :class:`dataset.datacard.CardFacts`)."""
    originals = _originals(samples)
    order = [s.value for s in Split]
    per_class_split: dict[str, dict[str, int]] = {}
    for cls in SceneClass:
        mine = [plan.splits[s.id].value for s in samples if s.cls == cls]
        if mine:
            counts = Counter(mine)
            per_class_split[cls.value] = {split: counts[split] for split in order}
    recordings: dict[str, bool] = {s.recording: s.parent.looped for s in originals}
    return CardFacts(
        tool_version=tool_version,
        parameters=parameters,
        per_class_split=per_class_split,
        originals=dict(Counter(s.cls.value for s in originals)),
        offsets=dict(Counter(s.cls.value for s in samples if s.origin == PairOrigin.OFFSET)),
        dropped=dict(dropped),
        augmented=list(augmented),
        label_sources=dict(sorted(Counter(s.parent.label_source.value for s in originals).items())),
        final_reasons=dict(
            Counter(s.parent.final_reason.value for s in originals if s.parent.human_label and s.parent.final_reason)
        ),
        reviewers=len({name for s in originals for name in s.parent.reviewers}),
        correction=correction_matrix(originals),
        agreement=_agreement(session),
        osm_sources=_uses(
            [
                (public_source(s.parent.osm_source), s.parent.osm_source_date or "")
                for s in originals
                if s.parent.osm_source
            ]
        ),
        imagery_sources=_uses([(public_source(s.image_source), s.image_acquired or "") for s in samples]),
        attribution=attribution_rows(samples),
        split=plan.to_json(),
        footprint_side_m=footprint_side_m,
        looped_recordings=sum(recordings.values()),
        skipped={str(k): v for k, v in skipped.items()},
    )
