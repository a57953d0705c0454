"""``jobdesk webhooks``: an operator's webhooks, their deliveries, and a sender to run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from jobdesk.cli.app import AsJson, Db, Debug, app, cell, err, open_desk, out, print_json, run, when
from jobdesk.webhooks import Delivery, Webhook

__all__ = ["webhooks_app"]

webhooks_app = typer.Typer(
    help="Webhooks: job transitions sent to the host application, signed; deliveries."
)
app.add_typer(webhooks_app, name="webhooks", no_args_is_help=True)


@webhooks_app.command("set")
def webhooks_set(
    url: Annotated[str, typer.Argument(help="The endpoint: https://...")],
    *,
    user: Annotated[str | None, typer.Option("--user", "-u", help="This user's jobs.")] = None,
    project: Annotated[str | None, typer.Option(help="This project's jobs.")] = None,
    secret: Annotated[
        str | None, typer.Option(help="whsec_... (at least 24 bytes); default: a new one.")
    ] = None,
    event: Annotated[
        list[str] | None, typer.Option(help="Only these events (job.completed...), repeat.")
    ] = None,
    allow_http: Annotated[bool, typer.Option(help="Allow http:// (not https).")] = False,
    allow_private: Annotated[
        bool, typer.Option(help="Allow loopback, link-local and private addresses.")
    ] = False,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Send a user's (or a project's) job transitions to URL; prints the secret."""

    async def work() -> Webhook:
        async with open_desk(db) as desk:
            return await desk.set_webhook(
                url,
                user_id=user,
                project_id=project,
                secret=secret,
                events=event or None,
                allow_http=allow_http,
                allow_private=allow_private,
            )

    webhook = run(work(), as_json=as_json)
    if as_json:
        print_json(webhook)
    else:
        out.print(webhook.secret)
        err.print(Text(f"webhook {webhook.id} sends to {webhook.url}; keep the secret above"))


@webhooks_app.command("list")
def webhooks_list(db: Db = None, as_json: AsJson = False, debug: Debug = False) -> None:
    """Every webhook (secrets only with --json)."""

    async def work() -> list[Webhook]:
        async with open_desk(db) as desk:
            return await desk.get_webhooks()

    webhooks = run(work(), as_json=as_json)
    if as_json:
        print_json(webhooks)
        return
    table = Table()
    for column in ("id", "owner", "url", "events"):
        table.add_column(column)
    for webhook in webhooks:
        owner = f"user {webhook.user_id}" if webhook.user_id else f"project {webhook.project_id}"
        events = ", ".join(webhook.events)
        table.add_row(cell(webhook.id), cell(owner), cell(webhook.url), cell(events))
    out.print(table)


@webhooks_app.command("remove")
def webhooks_remove(
    webhook_id: Annotated[str, typer.Argument(help="The webhook's id.")],
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Forget a webhook and its undelivered deliveries."""

    async def work() -> bool:
        async with open_desk(db) as desk:
            return await desk.remove_webhook(webhook_id)

    removed = run(work(), as_json=as_json)
    if as_json:
        print_json({"removed": removed})
    else:
        out.print(Text(f"webhook {webhook_id} {'removed' if removed else 'was not there'}"))


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    *,
    state: Annotated[
        str | None, typer.Option(help="pending, delivered or dead (the failures).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Deliveries, newest first: what went, what waits, what died (with the last answer)."""

    async def work() -> list[Delivery]:
        async with open_desk(db) as desk:
            return await desk.get_webhook_deliveries(state=state, limit=limit)

    deliveries = run(work(), as_json=as_json)
    if as_json:
        print_json(deliveries)
        return
    table = Table()
    for column in ("id", "event", "job", "state", "tries", "next try", "last answer"):
        table.add_column(column)
    for delivery in deliveries:
        answer = delivery.last_status or delivery.last_response
        table.add_row(
            cell(delivery.id),
            cell(delivery.event),
            cell(delivery.job_id),
            cell(delivery.state),
            cell(delivery.tries),
            cell(when(delivery.next_attempt_at) if delivery.state == "pending" else ""),
            cell(answer),
        )
    out.print(table)


@webhooks_app.command("redeliver")
def webhooks_redeliver(
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id.")],
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Send a dead (or delivered) delivery again, with a fresh round of retries."""

    async def work() -> bool:
        async with open_desk(db) as desk:
            return await desk.redeliver_webhook(delivery_id)

    again = run(work(), as_json=as_json)
    if as_json:
        print_json({"redelivered": again})
    else:
        out.print(Text(f"delivery {delivery_id} {'queued again' if again else 'not found'}"))


@webhooks_app.command("deliver")
def webhooks_deliver(
    *,
    forever: Annotated[
        bool, typer.Option(help="Keep sending (a sender of its own, beside jobdesk serve's).")
    ] = False,
    interval: Annotated[
        float, typer.Option(help="With --forever: seconds between looks when idle.", min=0.05)
    ] = 1.0,
    concurrency: Annotated[int, typer.Option(help="Sends at once.", min=1, max=256)] = 16,
    send_timeout: Annotated[
        float, typer.Option(help="Seconds a receiver has to answer a send.", min=0.01)
    ] = 10.0,
    lease_seconds: Annotated[
        float,
        typer.Option(
            help="Seconds the deliveries it claims are kept from other senders (if this "
            "sender dies, they wait that long); longer than --send-timeout.",
            min=0.1,
        ),
    ] = 60.0,
    db: Db = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Send the due deliveries now (jobdesk serve and jobdesk worker do this by themselves);
    prints how many."""

    async def work() -> int:
        async with open_desk(db) as desk:
            if forever:
                await desk.send_webhooks(
                    interval=interval,
                    concurrency=concurrency,
                    send_timeout=send_timeout,
                    lease_seconds=lease_seconds,
                )
            return await desk.deliver_webhooks(
                concurrency=concurrency, send_timeout=send_timeout, lease_seconds=lease_seconds
            )

    sent = run(work(), as_json=as_json)
    if as_json:
        print_json({"sent": sent})
    else:
        out.print(Text(f"sent {sent} deliveries"))
