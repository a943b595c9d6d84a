"""The one error the codec raises."""

from __future__ import annotations

from gateway.contract import ReasonCode


class PayloadError(ValueError):
    """A message that breaks the wire contract.

    Attributes:
        reason: the contract's dead-letter reason code.
        detail: a human-readable explanation (never contains the payload itself).
    """

    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
