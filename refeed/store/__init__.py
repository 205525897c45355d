"""The feedback store: one data model for every kind of feedback, on SQLite or PostgreSQL.

Imports no torch. ``Store`` is the SDK; ``tables`` the schema; ``formats`` import and export.
"""

from refeed.store.errors import IdempotencyConflict, NotFound, StoreError, ValidationFailed
from refeed.store.sdk import Store

__all__ = ["IdempotencyConflict", "NotFound", "Store", "StoreError", "ValidationFailed"]
