"""The event API: the Segment-compatible HTTP front door for backends, and the codec server for the UI."""

from starter.api.app import create_app
from starter.api.services import ApiServices

__all__ = ["ApiServices", "create_app"]
