"""Operator routes for webhooks under ``/api/v1/admin/webhooks`` (admin tokens only): set,
list and remove webhooks; see deliveries and failures; redeliver. Each one translates and
delegates; the core checks every value (422 naming the field, nothing written)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field, StrictBool, StrictStr

from jobdesk import wire
from jobdesk.errors import JobNotFound
from jobdesk.http.auth import CurrentAdmin
from jobdesk.http.runtime import RuntimeDep
from jobdesk.http.schemas import ID_RULE, JOB_ID_RULE, Body, Out
from jobdesk.http.schemas_problems import documented
from jobdesk.webhooks import EVENTS, Delivery, Webhook

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["operator"])

WebhookId = Annotated[
    str, Path(alias="id", description="A webhook's id.", json_schema_extra=JOB_ID_RULE)
]
DeliveryId = Annotated[str, Path(alias="id", description="A delivery's id (digits).")]


class WebhookRequest(Body):
    """``PUT /api/v1/admin/webhooks``: one user's or one project's webhook (it replaces theirs)."""

    url: Annotated[StrictStr, Field(description="https:// (http:// only with allow_http).")]
    user_id: Annotated[StrictStr | None, Field(json_schema_extra=ID_RULE)] = None
    project_id: Annotated[StrictStr | None, Field(json_schema_extra=ID_RULE)] = None
    secret: Annotated[
        StrictStr | None,
        Field(description="`whsec_` and at least 24 bytes in base64; null makes one."),
    ] = None
    events: Annotated[
        list[StrictStr] | None,
        Field(description=f"Some of {list(EVENTS)}; null: every one."),
    ] = None
    allow_http: StrictBool = False
    allow_private: Annotated[
        StrictBool,
        Field(description="Allow a loopback, link-local or private address (SSRF guard off)."),
    ] = False


class WebhookOut(Out):
    """A webhook; its secret only in the answer that set it."""

    id: str
    url: str
    user_id: str | None
    project_id: str | None
    events: list[str]
    allow_http: bool
    allow_private: bool
    created_at: datetime
    secret: Annotated[str | None, Field(description="Only when set: keep it.")] = None

    @classmethod
    def of(cls, webhook: Webhook, *, reveal: bool = False) -> WebhookOut:
        """The body for ``webhook``."""
        return cls(
            id=webhook.id,
            url=webhook.url,
            user_id=webhook.user_id,
            project_id=webhook.project_id,
            events=webhook.events,
            allow_http=webhook.allow_http,
            allow_private=webhook.allow_private,
            created_at=webhook.created_at,
            secret=webhook.secret if reveal else None,
        )


class DeliveryOut(Out):
    """One delivery of one transition to one webhook, and how it went."""

    id: str
    webhook_id: str
    job_id: Annotated[str, Field(description="The job's id, or the group's for a group event.")]
    subject: Literal["job", "group"]
    event: str
    attempt: int
    at: datetime
    state: Literal["pending", "delivered", "dead"]
    tries: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_response: str | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        """The body for ``delivery``."""
        data = wire.encode(delivery)
        assert isinstance(data, dict)
        data.pop("status")
        return cls.model_validate({**data, "event": delivery.event})


@router.put("", operation_id="setWebhook", responses=documented(401, 422, 503))
async def set_webhook(body: WebhookRequest, admin: CurrentAdmin, runtime: RuntimeDep) -> WebhookOut:
    """Send one user's (or project's) job and group transitions to an endpoint; answers its
    secret."""
    webhook = await runtime.require_desk().set_webhook(
        body.url,
        user_id=body.user_id,
        project_id=body.project_id,
        secret=body.secret,
        events=body.events,
        allow_http=body.allow_http,
        allow_private=body.allow_private,
    )
    return WebhookOut.of(webhook, reveal=True)


@router.get("", operation_id="listWebhooks", responses=documented(401, 503))
async def list_webhooks(admin: CurrentAdmin, runtime: RuntimeDep) -> list[WebhookOut]:
    """Every webhook (without secrets), oldest first."""
    return [WebhookOut.of(webhook) for webhook in await runtime.require_desk().get_webhooks()]


@router.delete(
    "/{id}", operation_id="removeWebhook", status_code=204, responses=documented(401, 404, 422, 503)
)
async def remove_webhook(webhook_id: WebhookId, admin: CurrentAdmin, runtime: RuntimeDep) -> None:
    """Forget a webhook and its undelivered deliveries."""
    if not await runtime.require_desk().remove_webhook(webhook_id):
        raise _not_found("webhook", webhook_id)


@router.get("/deliveries", operation_id="listDeliveries", responses=documented(401, 422, 503))
async def list_deliveries(
    admin: CurrentAdmin,
    runtime: RuntimeDep,
    state: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
    webhook_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": 1000})] = 50,
) -> list[DeliveryOut]:
    """Deliveries, newest first: the failures (`state=dead`), what waits, what went."""
    deliveries = await runtime.require_desk().get_webhook_deliveries(
        state=state, webhook_id=webhook_id, limit=limit
    )
    return [DeliveryOut.of(delivery) for delivery in deliveries]


@router.post(
    "/deliveries/{id}/redeliver",
    operation_id="redeliver",
    status_code=204,
    responses=documented(401, 404, 422, 503),
)
async def redeliver(delivery_id: DeliveryId, admin: CurrentAdmin, runtime: RuntimeDep) -> None:
    """Send a dead (or delivered) delivery again, with a fresh round of retries."""
    if not await runtime.require_desk().redeliver_webhook(delivery_id):
        raise _not_found("delivery", delivery_id)


def _not_found(kind: str, identifier: str) -> JobNotFound:
    # The table's one 404, with words for what was not there.
    error = JobNotFound(identifier)
    error.args = (f"{kind} {identifier!r} not found (or not dead nor delivered)",)
    return error
