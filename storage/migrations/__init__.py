"""Alembic's script directory for the journeys database: ``env.py``, ``script.py.mako`` and ``versions/``.

Nothing here runs on its own: :mod:`storage.schema` configures Alembic in code and hands it a connection.
"""
