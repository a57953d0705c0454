"""What importing a face loads: a remote worker must not carry the HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_PACKAGES = ("fastapi", "starlette", "pydantic")


def loaded_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON document as its last line."""
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout.splitlines()[-1])
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("module", ["jobdesk.worker", "jobdesk.worker.http", "jobdesk.wire"])
def test_a_remote_worker_loads_neither_the_web_framework_nor_pydantic(module: str) -> None:
    result = loaded_after(
        f"import json, sys, {module}\n"
        f"print(json.dumps({{'loaded': [name for name in {SERVER_PACKAGES!r} "
        "if name in sys.modules]}))"
    )
    assert result["loaded"] == []


def test_importing_the_http_face_builds_no_app() -> None:
    result = loaded_after(
        "import json, fastapi\n"
        "built = []\n"
        "original = fastapi.FastAPI.__init__\n"
        "def counting(self, *args, **kwargs):\n"
        "    built.append(1)\n"
        "    original(self, *args, **kwargs)\n"
        "fastapi.FastAPI.__init__ = counting\n"
        "import jobdesk.http, jobdesk.http.app\n"
        "print(json.dumps({'built': len(built), 'factory': callable(jobdesk.http.create_app)}))"
    )
    assert result == {"built": 0, "factory": True}


def test_the_old_name_of_the_worker_runtime_still_works_and_warns() -> None:
    import jobdesk.worker  # noqa: PLC0415 - the module's attribute access is the point

    with pytest.warns(DeprecationWarning, match="WorkerRuntime"):
        old = jobdesk.worker.Worker
    assert old is jobdesk.worker.WorkerRuntime


def test_tracing_off_imports_no_opentelemetry_while_jobs_are_made_and_run() -> None:
    # The library, the worker and the CLI (FastAPI itself loads opentelemetry-api when it
    # is installed, so the HTTP face is left out: jobdesk's own code imports none of it).
    result = loaded_after(
        "import asyncio, json, sys, tempfile, os\n"
        "import jobdesk.worker, jobdesk.cli\n"
        "from jobdesk import JobDesk\n"
        "from jobdesk.worker import DeskTransport, Registry, WorkerRuntime\n"
        "registry = Registry()\n"
        "@registry.handler('double')\n"
        "async def double(ctx, n): return n * 2\n"
        "async def main():\n"
        "    path = os.path.join(tempfile.mkdtemp(), 'jobdesk.db')\n"
        "    async with JobDesk.open('sqlite:///' + path) as desk:\n"
        "        job = await desk.create_job('u1', 'double', 21)\n"
        "        token = await desk.create_worker_token('w')\n"
        "        transport = await DeskTransport.connect(desk, token)\n"
        "        await WorkerRuntime(registry, transport).run(until_empty=True)\n"
        "        return (await desk.get_job_status(job.id, 'u1')).result\n"
        "result = asyncio.run(main())\n"
        "print(json.dumps({'result': result, 'otel': [n for n in sys.modules "
        "if n.startswith('opentelemetry')]}))"
    )
    assert result == {"result": 42, "otel": []}
