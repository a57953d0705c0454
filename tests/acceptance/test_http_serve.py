"""The server as operators run it: ``python -m jobdesk.http`` in a process of its own,
and the settings it reads from the environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jobdesk.errors import InvalidInput
from jobdesk.http import Settings
from tests.processes import free_port


def test_the_server_serves_logs_json_lines_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    environment = {**os.environ, "JOBDESK_CORS_ORIGINS": "https://app.example"}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "jobdesk.http"),
            *("--db", f"sqlite:///{tmp_path / 'jobdesk.db'}", "--port", str(port)),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{base}/readyz")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)  # polling a process from outside: no event to await
        assert ready.json() == {"status": "ready"}
        preflight = httpx.options(
            f"{base}/api/v1/jobs",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        refused = httpx.get(f"{base}/api/v1/jobs", headers={"X-Request-ID": "from-the-test"})
        assert refused.status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert server.returncode in (0, -signal.SIGTERM), errors
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    assert "Application shutdown complete." in [line["message"] for line in lines]
    access = [line for line in lines if line["logger"] == "jobdesk.http.access"]
    assert {"request_id": "from-the-test", "status": 401, "route": "/api/v1/jobs"}.items() <= (
        access[-1].items()
    )
    assert all("jdu_" not in line for line in errors.splitlines())


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "JOBDESK_JWT_SECRET": "s" * 32,
            "JOBDESK_JWT_AUDIENCE": "jobdesk",
            "JOBDESK_JWT_ISSUER": "https://app.example",
            "JOBDESK_JWT_LEEWAY_SECONDS": "30",
            "JOBDESK_MAX_BODY_BYTES": "2048",
            "JOBDESK_CORS_ORIGINS": "https://a.example, https://b.example,",
            "JOBDESK_SSE_KEEPALIVE_SECONDS": "5",
            "JOBDESK_REAP_INTERVAL_SECONDS": "0",
        },
        trust_request_id=False,
    )
    assert settings == Settings(
        jwt_secret="s" * 32,
        jwt_audience="jobdesk",
        jwt_issuer="https://app.example",
        jwt_leeway_seconds=30.0,
        max_body_bytes=2048,
        cors_origins=("https://a.example", "https://b.example"),
        sse_keepalive_seconds=5.0,
        reap_interval_seconds=0.0,
        trust_request_id=False,
    )
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Settings(jwt_secret="too-short"), "jwt_secret"),
        (lambda: Settings(max_body_bytes=0), "max_body_bytes"),
        (lambda: Settings(sse_keepalive_seconds=0), "sse_keepalive_seconds"),
        (lambda: Settings(reap_interval_seconds=-1), "reap_interval_seconds"),
        (lambda: Settings(cors_origins="https://a.example"), "cors_origins"),  # type: ignore[arg-type]
        (lambda: Settings.from_env({"JOBDESK_MAX_BODY_BYTES": "1MB"}), "JOBDESK_MAX_BODY_BYTES"),
        (
            lambda: Settings.from_env({"JOBDESK_REAP_INTERVAL_SECONDS": "often"}),
            "JOBDESK_REAP_INTERVAL_SECONDS",
        ),
        (lambda: Settings.from_env({}, colour="blue"), "settings"),
    ],
)
def test_bad_settings_name_the_field(make: object, field: str) -> None:
    assert callable(make)
    with pytest.raises(InvalidInput) as refused:
        make()
    assert refused.value.field == field
