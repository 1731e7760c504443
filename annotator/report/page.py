"""The report as one self-contained HTML page: inline CSS, charts as inline SVG, no external reference at all.

Every text from the store (class names, annotator names) goes through :func:`html.escape`. The charts are drawn
here from the figures (no plotting library, no script), so the page opens offline in any browser and prints.
"""

from __future__ import annotations

from html import escape

from annotator.rank.scores import RankFeedback, VerdictTally
from annotator.report.data import AgeBin, ReportData
from annotator.reviewers import AnchoringFigure, Rate, ReviewerFigures
from annotator.status import StoreStatus

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; margin: 0;
       background: #f6f7f9; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 34px 0 8px; border-bottom: 1px solid #d8dde5;
     padding-bottom: 4px; }
p.lead, p.note { color: #4a5566; margin: 4px 0 12px; max-width: 78ch; }
section { background: #fff; border: 1px solid #e1e5eb; border-radius: 8px; padding: 4px 20px 16px; margin: 18px 0; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e7eaef; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f5; font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.card { background: #f0f4fa; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 20px; } .card span { color: #4a5566; font-size: 13px; }
.none { color: #8a94a3; font-style: italic; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
"""

#: The heatmap's scale: white to this blue by the cell's share of its row.
_BLUE = (31, 87, 166)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _rate(rate: Rate) -> str:
    low_high = rate.interval
    if rate.value is None or low_high is None:
        return "—"
    return f"{rate.value:.0%} <small>[{low_high[0]:.0%}, {low_high[1]:.0%}]</small>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A table; cells are HTML already (escape text before)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _none(text: str) -> str:
    return f'<p class="none">{escape(text)}</p>'


# ------------------------------------------------------------------------------------------ charts


def _shade(share: float) -> str:
    r, g, b = (round(255 + (c - 255) * share) for c in _BLUE)
    return f"rgb({r},{g},{b})"


def heatmap_svg(rows: list[str], columns: list[str], counts: list[list[int]]) -> str:
    """The correction matrix as an SVG heatmap: a cell's shade is its share of the row (of the OSM class), its
    number the count of pairs; full class names on both axes; the diagonal (OSM confirmed) outlined."""
    cell, left, top = 38, 150, 130
    width, height = left + cell * len(columns) + 100, top + cell * len(rows) + 10  # room for slanted names
    parts = [
        f'<svg role="img" aria-label="correction matrix" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    outlines: list[str] = []
    for j, name in enumerate(columns):
        x = left + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.0f}" y="{top - 8}" font-size="12" transform="rotate(-50 {x:.0f} {top - 8})">'
            f"{escape(name)}</text>"
        )
    for i, name in enumerate(rows):
        y = top + i * cell
        total = sum(counts[i])
        parts.append(
            f'<text x="{left - 8}" y="{y + cell / 2 + 4:.0f}" font-size="12" text-anchor="end">{escape(name)}</text>'
        )
        for j, n in enumerate(counts[i]):
            x = left + j * cell
            share = n / total if total else 0.0
            if rows[i] == columns[j]:  # outlined on top of every cell, so no neighbour covers it
                outlines.append(
                    f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="none" stroke="#c2410c" '
                    'stroke-width="2"/>'
                )
            stroke = ' stroke="#e5e7eb"'
            title = f"OSM {rows[i]} → human {columns[j]}: {n} pairs" + (f" ({share:.0%} of the row)" if total else "")
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_shade(share)}"{stroke}>'
                f"<title>{escape(title)}</title></rect>"
            )
            if n:
                colour = "#fff" if share > 0.55 else "#1d2430"
                parts.append(
                    f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="12" text-anchor="middle" '
                    f'fill="{colour}">{n}</text>'
                )
    parts.extend(outlines)
    parts.append('<text x="4" y="16" font-size="12" font-weight="600">OSM class ↓ · human label →</text></svg>')
    return "".join(parts)


def rates_svg(items: list[tuple[str, Rate]], *, label: str, colour: str = "#1f57a6") -> str:
    """Horizontal bars of proportions with their 95 % intervals as whiskers (0–100 % axis)."""
    bar, gap, left, plot = 22, 12, 190, 460
    height = 30 + len(items) * (bar + gap)
    parts = [f'<svg role="img" aria-label="{escape(label)}" width="{left + plot + 130}" height="{height}">']
    for tick in range(0, 101, 25):
        x = left + plot * tick / 100
        parts.append(f'<line x1="{x:.0f}" y1="18" x2="{x:.0f}" y2="{height - 4}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{x:.0f}" y="12" font-size="11" text-anchor="middle" fill="#6b7280">{tick}%</text>')
    for k, (name, rate) in enumerate(items):
        y = 24 + k * (bar + gap)
        parts.append(
            f'<text x="{left - 8}" y="{y + bar / 2 + 4:.0f}" font-size="12" text-anchor="end">{escape(name)}</text>'
        )
        if rate.value is None:
            parts.append(f'<text x="{left + 4}" y="{y + bar / 2 + 4:.0f}" font-size="12" fill="#8a94a3">no data</text>')
            continue
        parts.append(
            f'<rect x="{left}" y="{y}" width="{plot * rate.value:.1f}" height="{bar}" fill="{colour}" opacity="0.8">'
            f"<title>{escape(name)}: {rate.successes} of {rate.n}</title></rect>"
        )
        low_high = rate.interval
        if low_high is not None:
            x1, x2, mid = left + plot * low_high[0], left + plot * low_high[1], y + bar / 2
            parts.append(
                f'<line x1="{x1:.1f}" y1="{mid}" x2="{x2:.1f}" y2="{mid}" stroke="#111827" stroke-width="1.5"/>'
                f'<line x1="{x1:.1f}" y1="{y + 5}" x2="{x1:.1f}" y2="{y + bar - 5}" stroke="#111827"/>'
                f'<line x1="{x2:.1f}" y1="{y + 5}" x2="{x2:.1f}" y2="{y + bar - 5}" stroke="#111827"/>'
            )
        parts.append(
            f'<text x="{left + plot + 8}" y="{y + bar / 2 + 4:.0f}" font-size="12">{rate.value:.0%} (n={rate.n})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------ sections


def _overview(status: StoreStatus) -> str:
    stages = status.stages
    cards = [
        ("recordings", status.recordings.get("accepted", 0)),
        ("pairs", status.pairs.get("original", 0)),
        ("pre-labelled", stages.get("prelabelled", 0)),
        ("pushed", stages.get("pushed", 0)),
        ("reviewed", stages.get("reviewed", 0)),
        ("OSM accepted", stages.get("accepted", 0)),
        ("corrected", stages.get("corrected", 0)),
        ("unusable", stages.get("unusable", 0)),
        ("conflicts", stages.get("conflicts", 0)),
    ]
    body = "".join(f'<div class="card"><b>{n}</b><span>{escape(k)}</span></div>' for k, n in cards)
    return f'<div class="cards">{body}</div>'


def _matrix_section(status: StoreStatus) -> str:
    if not any(any(row) for row in status.correction_counts):
        return _none("No pair has a human final label yet: pull reviews first (annotator ls pull).")
    return (
        '<p class="note">Rows: the OSM class (or none, where OSM matched nothing); columns: the human final label. '
        "A cell's shade is its share of the row; the outlined diagonal is the OSM class confirmed. Hover a cell for "
        "its count and share.</p>"
        + heatmap_svg(status.correction_rows, status.correction_columns, status.correction_counts)
    )


def _age_section(bins: list[AgeBin]) -> str:
    if not any(b.decided for b in bins):
        return _none("No human decision on an OSM class yet.")
    rows = [
        [escape(b.label), str(b.decided), str(b.accepted), str(b.corrected), str(b.unusable), _rate(b.correction)]
        for b in bins
    ]
    chart = rates_svg([(b.label, b.correction) for b in bins], label="correction rate by OSM edit age")
    return (
        '<p class="note">Years from the last edit of the deciding OSM element to this report. Correction rate = '
        "corrected / (accepted + corrected), with its 95 % Wilson interval; unusable verdicts are counted apart. "
        "A rate that climbs with age says old OSM edits deserve review first.</p>"
        + chart
        + _table(["last edited", "decided", "OSM accepted", "corrected", "unusable", "correction rate [95% CI]"], rows)
    )


def _annotator_section(figures: ReviewerFigures) -> str:
    if not figures.annotators:
        return _none("No review pulled yet.")
    rows = []
    for a in figures.annotators:
        control = (
            f"{a.control_accuracy:.0%} <small>({a.control_correct} of {a.control_n})</small>"
            if a.control_accuracy is not None
            else "—"
        )
        rows.append(
            [
                escape(a.annotator),
                str(a.reviews),
                str(a.skipped),
                _pct(a.accept_rate),
                str(a.unusable),
                control,
                _fmt(a.median_seconds, 1),
            ]
        )
    excluded = (
        f" {figures.control_excluded_own} control verdict(s) on pairs the same annotator had reviewed are left out."
        if figures.control_excluded_own
        else ""
    )
    return (
        '<p class="note">Accept rate = accepted / (accepted + corrected) against the pair\'s OSM class: close to 100 % '
        "on pairs others correct often is a sign of rubber-stamping. Control accuracy = verdicts on control items "
        f"(pairs whose label is settled, served again) equal to the settled label.{escape(excluded)} Seconds: "
        "Label Studio's lead time per task, median.</p>"
        + _table(
            ["annotator", "reviews", "skipped", "accept rate", "unusable", "control accuracy", "median s/task"], rows
        )
    )


def _agreement_section(figures: ReviewerFigures) -> str:
    alpha = (
        f'<div class="cards"><div class="card"><b id="alpha">{_fmt(figures.alpha, 3)}</b><span>Krippendorff\'s '
        f"alpha (nominal) on {figures.alpha_units} pairs</span></div></div>"
    )
    note = (
        '<p class="note">Chance-corrected agreement on the pairs two or more annotators labelled in the review '
        "project (adjudication left out). 1 = perfect, 0 = no better than chance; as a rule of thumb alpha ≥ 0.8 is "
        "reliable, 0.667–0.8 tentative, below that the labels need a second look. Cohen's kappa reads the same for "
        "two annotators on the pairs they share.</p>"
    )
    if not figures.kappa:
        return note + alpha + _none("No pair was labelled by two annotators yet (push with --overlap 2).")
    rows = [[escape(f"{k.first} × {k.second}"), str(k.shared), str(k.agreed), _fmt(k.kappa)] for k in figures.kappa]
    return note + alpha + _table(["annotators", "shared pairs", "agreed", "Cohen's kappa"], rows)


def _anchoring_section(anchoring: AnchoringFigure | None) -> str:
    if anchoring is None:
        return _none("No class verdict on a pair with an OSM class yet.")
    chart = rates_svg(
        [("pre-selected", anchoring.preselected), ("blind", anchoring.blind)],
        label="OSM accept rate with and without pre-selection",
        colour="#b45309",
    )
    low_high = anchoring.difference_interval
    if anchoring.difference is not None and low_high is not None:
        diff = (
            f"Difference (pre-selected − blind): <b>{anchoring.difference:+.0%}</b>, 95 % interval "
            f"[{low_high[0]:+.0%}, {low_high[1]:+.0%}] (Newcombe's hybrid score method). An interval above zero "
            "means the pre-selected suggestion makes annotators accept the OSM class more often than they would "
            "unprompted."
        )
    else:
        diff = "Push a share of tasks blind (ls push --blind-fraction) to measure the difference."
    rows = [
        [name, str(rate.n), str(rate.successes), _rate(rate)]
        for name, rate in (("pre-selected", anchoring.preselected), ("blind", anchoring.blind))
    ]
    return (
        '<p class="note">How often a class verdict is the OSM class, on tasks pushed with that class pre-selected '
        "versus without (blind), each with its 95 % Wilson interval.</p>"
        + chart
        + _table(["tasks pushed", "class verdicts", "OSM accepted", "rate [95% CI]"], rows)
        + f'<p class="note">{diff}</p>'
    )


def _tally_rate(tally: VerdictTally) -> Rate:
    return Rate(tally.corrected, tally.reviewed - tally.unusable)


def _rank_section(rank: RankFeedback) -> str:
    rows = []
    for name, tally in (
        (f"flagged (suspicion ≥ {rank.threshold:g})", rank.flagged_osm),
        ("not flagged", rank.unflagged_osm),
    ):
        rows.append(
            [
                escape(name),
                str(tally.pairs),
                str(tally.reviewed),
                str(tally.corrected),
                str(tally.unusable),
                _rate(_tally_rate(tally)),
            ]
        )
    chart = rates_svg(
        [("flagged", _tally_rate(rank.flagged_osm)), ("not flagged", _tally_rate(rank.unflagged_osm))],
        label="share corrected, flagged vs not flagged",
        colour="#047857",
    )
    return (
        f'<p class="note">Rank run #{rank.run_id} ({rank.created_at:%Y-%m-%d %H:%M} UTC) flagged {rank.flagged} of '
        f"{rank.scored} scored pairs. Its precision: among the OSM labels it flagged that a human decided since, the "
        "share corrected (the flagged bar should be well above the other).</p>"
        + chart
        + _table(["OSM labels the run judged", "pairs", "reviewed", "corrected", "unusable", "share corrected"], rows)
    )


def render_html(data: ReportData) -> str:
    """The whole page."""
    status = data.status
    sections = [
        ("overview", "The store", _overview(status)),
        ("matrix", "OSM class → human label", _matrix_section(status)),
        ("age", "Corrections by OSM edit age", _age_section(data.edit_age)),
        ("annotators", "Annotators", _annotator_section(status.reviewers)),
        ("agreement", "Agreement", _agreement_section(status.reviewers)),
        (
            "anchoring",
            "Anchoring: does the pre-selected answer sway verdicts?",
            _anchoring_section(status.reviewers.anchoring),
        ),
    ]
    if status.rank is not None:
        sections.append(("rank", "The ranking's measured precision", _rank_section(status.rank)))
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{content}</section>' for key, title, content in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>annotator report</title><style>{CSS}</style></head><body><main>"
        f'<h1>Labels and reviewers</h1><p class="lead">annotator report, {data.generated_at:%Y-%m-%d %H:%M} UTC.'
        "</p>"
        f"{body}</main></body></html>\n"
    )
