"""Draw a journey map as a Mermaid flowchart (placeholder until the renderer lands)."""

from __future__ import annotations

from journeymap.models import JourneyMap


def to_mermaid(journey: JourneyMap) -> str:
    raise NotImplementedError
