"""The notifier's error types (all are gridwatch errors)."""

from __future__ import annotations

from gridwatch.core.errors import GridwatchError


class NotifierError(GridwatchError):
    """Base of the notifier's own errors."""


class TemplateError(NotifierError):
    """Message templates are missing, malformed or use an unknown placeholder.

    ``problems`` lists every finding so one start-up shows them all.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid notification templates:\n  " + "\n  ".join(problems))
        self.problems = problems


class PhoneNumberError(NotifierError):
    """A phone number is not E.164. The message names the row, never the number in clear."""


class EventError(NotifierError):
    """An outage change handed to the notifier is malformed (names the field)."""


class SendError(NotifierError):
    """A channel could not deliver a message."""


class TransientSendError(SendError):
    """Retry later (429, 5xx, connection refused before the request left)."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class PermanentSendError(SendError):
    """Never retry (invalid number, unsubscribed recipient, no subscription...)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class OutcomeUnknownError(SendError):
    """The request may or may not have reached the provider (timeout, reset mid-request).

    The dispatcher reconciles with the provider's log before any retry.
    """
