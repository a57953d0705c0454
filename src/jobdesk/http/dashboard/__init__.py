"""The web dashboard, served by the same app as the API: Jinja2 pages, htmx and SSE.

``/`` is a user's view (sign in with a user token or a JWT), ``/admin`` the
operator's (admin tokens only). The pages call the desk in process, never the HTTP
API. Static assets (htmx and its SSE extension, vendored with their licences, and
the stylesheet) are served from ``/static``; nothing comes from a CDN. See
docs/dashboard.md.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter

from jobdesk.http.dashboard import views_admin, views_groups, views_user

__all__ = ["STATIC_DIRECTORY", "router"]

#: the directory of the dashboard's static files, inside the installed package
STATIC_DIRECTORY = str(resources.files("jobdesk.http.dashboard") / "static")

router = APIRouter(include_in_schema=False)
router.include_router(views_admin.router)
router.include_router(views_user.router)
router.include_router(views_groups.router)
