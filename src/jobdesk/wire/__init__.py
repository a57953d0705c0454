"""The wire format: jobs and errors as JSON, written and read the same by every face.

No face owns it. The HTTP API answers with it, the CLI's ``--json`` prints it,
the dashboard takes its status codes and its attempts from it, and a remote
worker reads the server's answers back with it, without loading the server's
web framework. It needs nothing but the core and the standard library.

- **Values**: :func:`encode` turns any core value (a :class:`~jobdesk.models.Job`,
  a page, an event, usage, a type's limits...) into JSON-ready data;
  :func:`decode_job`, :func:`decode_waiting` and :func:`decode_progress_reply`
  read them back. Times are ISO 8601 in UTC with a ``Z`` (:func:`timestamp`);
  :func:`job_values` is a job's document with its times still datetimes, for a
  JSON writer that writes them so (the HTTP face's hot routes).
- **Errors**: :data:`PROBLEMS` is the one table from each :mod:`jobdesk.errors`
  class to its RFC 9457 problem type (``urn:jobdesk:problem:<slug>``), HTTP
  status, title and extra members; :func:`encode_error` writes a problem
  document from an exception, :func:`error_from_problem` rebuilds the exception.
- **Words**: :func:`attempts_label`, "N of M", the one way attempts are shown;
  :func:`waiting_label`, the one way a wait is told.
"""

from jobdesk.wire.problems import (
    PROBLEM_PREFIX,
    PROBLEMS,
    ProblemType,
    encode_error,
    error_from_problem,
    problem_type,
    status_of,
)
from jobdesk.wire.values import (
    attempts_label,
    decode_job,
    decode_progress_reply,
    decode_waiting,
    encode,
    encode_group,
    encode_job,
    encode_type_limits,
    encode_usage,
    encode_waiting,
    job_values,
    parse_time,
    timestamp,
    waiting_label,
)

__all__ = [
    "PROBLEMS",
    "PROBLEM_PREFIX",
    "ProblemType",
    "attempts_label",
    "decode_job",
    "decode_progress_reply",
    "decode_waiting",
    "encode",
    "encode_error",
    "encode_group",
    "encode_job",
    "encode_type_limits",
    "encode_usage",
    "encode_waiting",
    "error_from_problem",
    "job_values",
    "parse_time",
    "problem_type",
    "status_of",
    "timestamp",
    "waiting_label",
]
