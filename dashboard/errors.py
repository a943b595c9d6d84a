"""The error body of every 4xx/5xx answer, as the OpenAPI description documents it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Responses = dict[int | str, dict[str, Any]]

_DESCRIPTIONS = {
    401: "Not logged in",
    403: "Not allowed for this account",
    404: "Unknown, or not visible to this account",
    409: "Conflict",
    422: "Invalid request",
    503: "Not ready",
}


class ErrorOut(BaseModel):
    """`detail` is a message; for a request that fails validation, FastAPI's list of errors."""

    detail: str | list[dict[str, Any]]


def errors(*codes: int, **descriptions: str) -> Responses:
    """OpenAPI `responses` for these status codes, each with the error body.

    Args:
        codes: HTTP status codes.
        descriptions: `s404="Unknown elder"` overrides the default text of a code.
    """
    return {
        code: {"model": ErrorOut, "description": descriptions.get(f"s{code}", _DESCRIPTIONS[code])}
        for code in codes
    }
