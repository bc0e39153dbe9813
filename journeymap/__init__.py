"""The journey-map language: what a marketer writes, validated before anything runs.

A map is YAML in, a :class:`JourneyMap` out, or a list of :class:`MapError` naming the file and the path inside
it. Everything here is deterministic, so the workflow interpreter can import it too; each step kind's handler
(:mod:`journeymap.steps`) is workflow code, run by the interpreter.
"""

from journeymap.errors import MapError, MapValidationError
from journeymap.loader import load_map, load_map_text, parse_map
from journeymap.models import JourneyMap

__all__ = ["JourneyMap", "MapError", "MapValidationError", "load_map", "load_map_text", "parse_map"]
