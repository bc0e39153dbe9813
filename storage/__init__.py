"""The database: customer profiles and the delivery ledger (sqlmodel; SQLite by default, PostgreSQL too)."""

from storage.engine import make_engine
from storage.tables import Customer, Delivery

__all__ = ["Customer", "Delivery", "make_engine"]
