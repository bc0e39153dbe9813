"""The report as one self-contained HTML page: tables, and charts drawn as inline SVG.

No script, no CDN, no font or image to fetch: the page opens from a file on a machine with no network, and
prints. Every value from the data goes through :func:`html.escape`.
"""

from __future__ import annotations

from html import escape

from analytics.event_counts import event_counts_html
from analytics.report import CohortSeries, FunnelStage, JourneyReport, Report, RfmGroupRow, SplitResult, ValueRow

_PALETTE = ("#2563eb", "#db2777", "#16a34a", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04", "#64748b")
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1f2937; }
h1 { margin-bottom: 0; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; margin: .5rem 0 1rem; } td, th { padding: .2rem .7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { border-bottom: 1px solid #9ca3af; }
tbody tr:nth-child(even) { background: #f9fafb; } .muted { color: #6b7280; } svg text { font: 12px system-ui; }
section.journey { break-inside: avoid; }
"""


_NONE = "n/a"
"""Shown where a figure does not exist (no holdout, no purchases)."""


def _pct(value: float | None) -> str:
    return _NONE if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return _NONE if value is None else f"{value:,.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def funnel_svg(name: str, stages: list[FunnelStage]) -> str:
    """Horizontal bars, one per stage, widths relative to the entries, with counts and share of entries."""
    width, bar_h, gap, label_w = 760, 26, 8, 230
    top = max((s.customers for s in stages), default=0) or 1
    height = len(stages) * (bar_h + gap) + gap
    parts = [
        f'<svg class="funnel" data-journey="{escape(name)}" role="img" aria-label="funnel of {escape(name)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    entered = stages[0].customers if stages else 0
    for index, stage in enumerate(stages):
        y = gap + index * (bar_h + gap)
        w = max(2.0, (width - label_w - 120) * stage.customers / top)
        share = f" ({stage.customers / entered * 100:.0f}%)" if entered and index else ""
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.68:.1f}" text-anchor="end">{escape(stage.label)}</text>'
            f'<rect class="stage" data-stage="{escape(stage.label)}" data-count="{stage.customers}" x="{label_w}" '
            f'y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" fill="{_PALETTE[index % 2]}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h * 0.68:.1f}">{stage.customers}{share}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def cohort_svg(cohorts: list[CohortSeries]) -> str:
    """Cumulative revenue per customer by months since the cohort's first month, one line per cohort."""
    width, height, left, bottom, top, right = 760, 320, 60, 40, 16, 130
    months = max((len(c.revenue_per_customer) for c in cohorts), default=1)
    peak = max((v for c in cohorts for v in c.revenue_per_customer), default=0.0) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / max(months - 1, 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [
        f'<svg class="cohorts" role="img" aria-label="revenue per customer by cohort" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#9ca3af"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#9ca3af"/>',
    ]
    for tick in range(5):
        value = peak * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    step = max(1, months // 12)
    for i in range(0, months, step):
        parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{i}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">months since first seen</text>'
    )
    for index, cohort in enumerate(cohorts):
        colour = _PALETTE[index % len(_PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(cohort.revenue_per_customer))
        parts.append(
            f'<polyline class="cohort" data-cohort="{escape(cohort.cohort)}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{points}"/>'
        )
        parts.append(
            f'<text x="{left + plot_w + 10}" y="{top + 14 + index * 16}" fill="{colour}">'
            f"{escape(cohort.cohort)} (n={cohort.customers})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _split_html(journey: str, split: SplitResult) -> str:
    rows = [
        [
            v.variant,
            str(v.customers),
            str(v.conversions),
            f"{_pct(v.rate)} [{_pct(v.rate_low)}, {_pct(v.rate_high)}]",
            _NONE
            if v.lift is None
            else f"{v.lift * 100:+.1f} pts [{v.lift_low * 100:+.1f}, {v.lift_high * 100:+.1f}]"
            if v.lift_low is not None and v.lift_high is not None
            else _NONE,
            _NONE if v.relative_lift is None else f"{v.relative_lift * 100:+.0f}%",
        ]
        for v in split.variants
    ]
    caption = (
        f"<p class='muted'>{escape(journey)}.{escape(split.step)}: conversion is "
        f"{escape(', '.join(split.goal_events))} within {split.window_days:g} days of assignment; "
        f"{split.confidence * 100:g}% intervals: {escape(split.method)}.</p>"
    )
    table = _table(
        ["variant", "customers", "converted", "rate [CI]", "lift vs holdout [CI]", "relative lift"], rows, "split"
    )
    return caption + table


def _journey_html(journey: JourneyReport) -> str:
    out = [
        f'<section class="journey" id="journey-{escape(journey.name)}"><h2>{escape(journey.name)}</h2>',
        f"<p class='muted'>{escape(journey.description)}</p>",
        f"<p>Entered <b>{journey.entered}</b> · not entered {journey.not_entered} · goal reached "
        f"<b>{journey.goal_conversions}</b>"
        + (f" (within {journey.goal_window_days:g} days)" if journey.goal_window_days is not None else "")
        + "</p>",
        funnel_svg(journey.name, journey.funnel),
    ]
    if journey.in_progress:
        out.append("<h3>In progress, by step</h3>")
        out.append(_table(["step", "customers"], [[s.step, str(s.count)] for s in journey.in_progress]))
    if journey.ended:
        out.append("<h3>Ended, and why</h3>")
        out.append(_table(["status", "reason", "runs"], [[e.status, e.reason, str(e.count)] for e in journey.ended]))
    if journey.sends:
        out.append("<h3>Messages by step and channel</h3>")
        out.append(
            _table(
                ["step", "channel", "outcome", "reason", "messages"],
                [[s.step, s.channel, s.status, s.reason or "", str(s.count)] for s in journey.sends],
                "sends",
            )
        )
    for split in journey.splits:
        out.append(f"<h3>Test and learn: {escape(split.step)}</h3>")
        out.append(_split_html(journey.name, split))
    out.append("</section>")
    return "".join(out)


def _value_table(rows: list[ValueRow]) -> str:
    return _table(
        [
            "group",
            "customers",
            "buyers",
            "orders",
            "revenue",
            "orders / customer",
            "revenue / customer",
            "median days between purchases",
        ],
        [
            [
                r.group,
                str(r.customers),
                str(r.buyers),
                str(r.orders),
                _num(r.revenue),
                _num(r.orders_per_customer),
                _num(r.revenue_per_customer),
                _num(r.median_days_between_purchases, 1),
            ]
            for r in rows
        ],
        "value",
    )


def _rfm_html(rows: list[RfmGroupRow]) -> list[str]:
    """Customer value by RFM group, one table per customer value defined (none when none is)."""
    out: list[str] = []
    for score in sorted({r.score for r in rows}):
        out.append(f"<h2>Customer value by RFM group ({escape(score)})</h2>")
        out.append(
            _table(
                ["group", "customers", "share", "revenue", "revenue / customer"],
                [
                    [escape(r.group), str(r.customers), _pct(r.share), _num(r.revenue), _num(r.revenue_per_customer)]
                    for r in rows
                    if r.score == score
                ],
                "value",
            )
        )
    return out


def render_html(report: Report, *, title: str = "Journeys report") -> str:
    """The whole page."""
    events = ", ".join(f"{escape(k)} {v:,}" for k, v in report.events.items()) or "none"
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class='muted'>Generated {escape(report.generated_at.isoformat(timespec='seconds'))}. "
        f"Events recorded: {events}.</p>",
        "<h2>Customer value by lifecycle stage</h2>",
        _value_table(report.value_by_stage),
        "<h2>Customer value by variant and holdout</h2>",
        "<p class='muted'>Purchases after the customer's assignment to the variant.</p>",
        _value_table(report.value_by_variant),
        *_rfm_html(report.value_by_rfm),
        "<h2>Value over time by cohort</h2>",
        "<p class='muted'>Cumulative revenue per customer, by the month customers were first seen.</p>",
        cohort_svg(report.cohorts),
        event_counts_html(report.event_contract),
        *(_journey_html(j) for j in report.journeys),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
