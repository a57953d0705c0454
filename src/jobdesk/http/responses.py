"""Hot routes' bodies written straight to JSON bytes, past FastAPI's response model.

A route that returns a pydantic model has it validated again and serialised by
FastAPI; for the routes a busy worker or producer calls (claims, completions,
creates: one job document per job), that doubled the work of writing the body.
These routes still declare their model (``response_model=``), so the OpenAPI
document is unchanged, but answer with :func:`json_response` of
:func:`jobdesk.wire.job_values`: the same document :func:`jobdesk.wire.encode_job`
writes (``tests/unit/test_wire_json.py`` holds them equal), each time written once,
in pydantic-core's JSON writer.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from starlette.responses import Response

__all__ = ["json_response"]


def json_response(value: Any, status_code: int = 200) -> Response:
    """``value`` (JSON-ready data whose times may be UTC datetimes) as a JSON response.

    A UTC time is written as :func:`jobdesk.wire.timestamp` writes it
    (``2026-03-01T12:00:00Z``, with microseconds when there are any).
    """
    return Response(
        pydantic_core.to_json(value), status_code=status_code, media_type="application/json"
    )
