"""``jobdesk``: the command line, a thin face over :class:`jobdesk.JobDesk`.

:mod:`jobdesk.cli.app` holds the app and what every command shares (options,
output, the one place errors become exit codes); the commands live in
:mod:`~jobdesk.cli.services` (``worker``, ``serve``), :mod:`~jobdesk.cli.admin`
(``migrate``, ``tokens``, ``limits``), :mod:`~jobdesk.cli.jobs`,
:mod:`~jobdesk.cli.schedules`, :mod:`~jobdesk.cli.groups`,
:mod:`~jobdesk.cli.webhooks` and :mod:`~jobdesk.cli.retention`. No rule lives here.
"""

from jobdesk.cli import admin, groups, jobs, retention, schedules, services, webhooks
from jobdesk.cli.app import EXIT_CODES, app

__all__ = [
    "EXIT_CODES",
    "admin",
    "app",
    "groups",
    "jobs",
    "retention",
    "schedules",
    "services",
    "webhooks",
]
