"""The store's errors: each message names what was wrong and, where there is one, the fix."""


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class ValidationFailed(StoreError, ValueError):
    """A record broke a rule; the message names the field and the rule. Nothing was written."""


class IdempotencyConflict(StoreError):
    """The idempotency key was used before with a different body."""


class NotFound(StoreError, KeyError):
    """An id that does not exist (in this project)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Unavailable(StoreError):
    """The database could not be reached or failed mid-transaction; nothing was committed, so the same
    write (with the same idempotency key) can be retried."""
