"""A user's groups: a list whose rows open into their jobs; cancel and retry a group.

Each view reads the session, calls the desk and renders a template; none holds a
rule. Another user's group is the same 404 as a group that does not exist.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from jobdesk.errors import GroupNotFound, InvalidInput, RateLimited
from jobdesk.groups import Group
from jobdesk.http.dashboard.forms import usage_refusal
from jobdesk.http.dashboard.render import error_page, page
from jobdesk.http.dashboard.session import Visit, visit
from jobdesk.http.dashboard.views_user import _checked_form, _desk, _signed_in_user, _to_sign_in
from jobdesk.models import Job
from jobdesk.wire import problem_type, status_of

__all__ = ["router"]

PAGE_SIZE = 20
#: the jobs an opened group shows
JOBS_SHOWN = 100
_NOTICES = {"cancelled": "Group cancelled.", "retried": "Failed jobs queued again."}

router = APIRouter(include_in_schema=False)


async def _groups_page(
    request: Request,
    current: Visit,
    user_id: str,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    desk = _desk(request)
    open_id = request.query_params.get("open", "")
    try:
        result = await desk.get_user_groups(
            user_id, limit=PAGE_SIZE, cursor=request.query_params.get("cursor") or None
        )
    except InvalidInput as exc:
        return error_page(current, status_of(exc), problem_type(exc).title, str(exc))
    groups: list[Group] = result.items
    jobs_of: dict[str, list[Job]] = {}
    if open_id:
        try:
            opened = await desk.get_group(open_id, user_id)
        except (GroupNotFound, InvalidInput):
            return _not_found(current)
        jobs_of[opened.id] = await desk.get_group_jobs(opened.id, user_id, limit=JOBS_SHOWN)
        if all(group.id != opened.id for group in groups):
            groups = [opened, *groups]
    return current.finish(
        page(
            "groups.html",
            status_code=status_code,
            visit=current,
            user_id=user_id,
            groups=groups,
            jobs_of=jobs_of,
            open_id=open_id,
            next_cursor=result.next_cursor,
            alert=alert,
            notice=None if alert else _NOTICES.get(request.query_params.get("done", "")),
        )
    )


def _not_found(current: Visit) -> Response:
    return error_page(
        current,
        status_of(GroupNotFound),
        problem_type(GroupNotFound).title,
        "There is no group with this id among your groups.",
    )


@router.get("/groups")
async def groups_page(request: Request) -> Response:
    """The user's groups, newest first; ``?open=<id>`` opens one into its jobs."""
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return _to_sign_in(current)
    return await _groups_page(request, current, user_id)


@router.post("/groups/{group_id}/cancel")
async def cancel_group(request: Request, group_id: str) -> Response:
    """Cancel a group's active jobs."""
    return await _act(request, group_id, "cancel")


@router.post("/groups/{group_id}/retry")
async def retry_group(request: Request, group_id: str) -> Response:
    """Retry a group's failed jobs; a refusal (a limit) is shown with its reason."""
    return await _act(request, group_id, "retry")


async def _act(request: Request, group_id: str, action: str) -> Response:
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return _to_sign_in(current)
    form = await _checked_form(request, current)
    if isinstance(form, Response):
        return form
    desk = _desk(request)
    try:
        if action == "cancel":
            group = await desk.cancel_group(group_id, user_id)
        else:
            group = await desk.retry_group(group_id, user_id)
    except (GroupNotFound, InvalidInput):
        return _not_found(current)
    except RateLimited as exc:
        alert = usage_refusal(exc, await desk.get_user_usage(user_id))
        return await _groups_page(
            request, current, user_id, alert=alert, status_code=status_of(exc)
        )
    done = "cancelled" if action == "cancel" else "retried"
    return RedirectResponse(
        f"/groups?open={group.id}&done={done}#group-{group.id}", status_code=303
    )
