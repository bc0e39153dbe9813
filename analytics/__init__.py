"""Analytics: what journeys did and whether they worked, in customer value, not campaign clicks."""

from analytics.collect import refresh_runs
from analytics.events import record_event, record_events
from analytics.html import render_html
from analytics.report import Report, build_report
from analytics.stats import newcombe_interval, wilson_interval

__all__ = [
    "Report",
    "build_report",
    "newcombe_interval",
    "record_event",
    "record_events",
    "refresh_runs",
    "render_html",
    "wilson_interval",
]
