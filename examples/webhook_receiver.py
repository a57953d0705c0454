"""A FastAPI receiver of jobdesk webhooks: it checks the signature and dedupes on webhook-id.

Run: ``JOBDESK_WEBHOOK_SECRET=whsec_... uvicorn examples.webhook_receiver:app``, and
point a webhook at it (``jobdesk webhooks set https://.../jobdesk-webhook --user alice``).
Deliveries come at least once: the same ``webhook-id`` may come again (after a timeout,
a crash of the sender, a redeliver). Record the ids you handled where you record what
you did with them (a UNIQUE column in the same transaction); a set in memory, as here,
only shows the idea.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from jobdesk.errors import Unauthorized
from jobdesk.webhooks import verify

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def create_receiver(secret: str, handle: Handler) -> FastAPI:
    """A receiver app that passes each verified, first-seen event to ``handle``."""
    app = FastAPI()
    seen: set[str] = set()

    @app.post("/jobdesk-webhook")
    async def receive(request: Request) -> dict[str, bool]:
        body = await request.body()
        try:
            message_id = verify(secret, request.headers, body, now=time.time())
        except Unauthorized as exc:
            raise HTTPException(status_code=401, detail=str(exc)) from None
        if message_id in seen:
            return {"duplicate": True}  # 2xx: delivered before; do not do it twice
        await handle(json.loads(body))  # an exception here answers 500: sent again later
        seen.add(message_id)
        return {"duplicate": False}

    return app


async def _print_event(event: dict[str, Any]) -> None:
    data = event["data"]  # a job's event has job_id, a group's group_id
    print(event["type"], data.get("job_id") or data.get("group_id"))


if "JOBDESK_WEBHOOK_SECRET" in os.environ:
    app = create_receiver(os.environ["JOBDESK_WEBHOOK_SECRET"], _print_event)
