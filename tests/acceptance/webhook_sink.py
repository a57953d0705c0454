"""A webhook receiver process that records what it receives, and fails on purpose.

    python tests/acceptance/webhook_sink.py --port 8123 --secret whsec_... --log sink.jsonl \\
        [--fail-every 7] [--stall-every 11 --stall-seconds 2]

It checks each delivery's signature (jobdesk.webhooks.verify: 401 if it does not
match) and appends one JSON line per arrival to ``--log``: the ``webhook-id``, the
event type, its subject (job or group id), the transition's time (``at``), when it
arrived (``received``, this machine's clock), the answer it gave, and whether that id
had come before (a duplicate, as at-least-once allows). Faults, by a hash of the
webhook-id so that they do not depend on arrival order: the first arrival of one id in
``--fail-every`` is answered 500; of one in ``--stall-every``, after ``--stall-seconds``
(longer than the sender's timeout: it gives up, and sends it again later). Every answer
waits ``--delay-seconds`` (a slow receiver).

Used by tests/acceptance/test_webhook_crash.py and bench/bench_groups.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import zlib
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jobdesk.errors import Unauthorized
from jobdesk.webhooks import verify


def create_sink(
    secret: str,
    log_path: str,
    *,
    fail_every: int = 0,
    stall_every: int = 0,
    stall_seconds: float = 0.0,
    delay_seconds: float = 0.0,
) -> Starlette:
    """The receiver app: verify, record, answer (or fail on purpose)."""
    seen: set[str] = set()  # answered 200
    arrived: set[str] = set()  # came at all: faults strike an id's first arrival only
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - the app's life

    def picked(message_id: str, every: int, salt: bytes) -> bool:
        return every > 0 and zlib.crc32(salt + message_id.encode()) % every == 0

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            message_id = verify(secret, request.headers, body, now=time.time())
        except Unauthorized as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        event: dict[str, Any] = json.loads(body)
        data = event["data"]
        first = message_id not in arrived
        arrived.add(message_id)
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        answer = 200
        if first and picked(message_id, stall_every, b"stall"):
            await asyncio.sleep(stall_seconds)
            answer = 504  # the sender stopped waiting before this: recorded, not delivered
        elif first and picked(message_id, fail_every, b"fail"):
            answer = 500
        record = {
            "id": message_id,
            "type": event["type"],
            "subject": data.get("job_id") or data.get("group_id"),
            "at": data["at"],
            "received": time.time(),
            "answer": answer,
            "duplicate": message_id in seen,
        }
        if answer == 200:
            seen.add(message_id)
        log.write(json.dumps(record) + "\n")
        return JSONResponse({"ok": answer == 200}, status_code=answer)

    return Starlette(routes=[Route("/hook", receive, methods=["POST"])])


def main() -> None:
    """Serve the sink until killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--stall-every", type=int, default=0)
    parser.add_argument("--stall-seconds", type=float, default=0.0)
    parser.add_argument("--delay-seconds", type=float, default=0.0, help="before each answer")
    arguments = parser.parse_args()
    app = create_sink(
        arguments.secret,
        arguments.log,
        fail_every=arguments.fail_every,
        stall_every=arguments.stall_every,
        stall_seconds=arguments.stall_seconds,
        delay_seconds=arguments.delay_seconds,
    )
    uvicorn.run(app, host="127.0.0.1", port=arguments.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
