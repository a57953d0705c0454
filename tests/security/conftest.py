"""The security tests use the HTTP acceptance tests' fixtures: the real app over the
test's desk, on each store, and a real uvicorn where a stream or a socket needs one."""

from __future__ import annotations

from tests.acceptance.conftest import api, make_app

__all__ = ["api", "make_app"]
