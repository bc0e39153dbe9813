"""Audiences: segments defined as data, their membership computed by the database (issue 15).

Floor 3 of the house, above ``storage`` (each condition kind's module carries its SQL, built on storage's
tables) and below ``workflows``/``activities`` (the refresh activity runs it). The models and the checks are
pure functions of data; only :mod:`audiences.membership` and :mod:`audiences.lists` talk to a database.
"""

from audiences.definitions import Segment, dependencies, load_segments, refresh_order

__all__ = ["Segment", "dependencies", "load_segments", "refresh_order"]
