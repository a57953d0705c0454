"""jobdesk on PostgreSQL, ``jobdesk worker`` processes on the database and over HTTP.

``bench.py jobdesk_rt_pg ...`` in the harness; the database URL from ``BENCH_JOBDESK_RT_PG_URL``.
Everything else is ``jobdesk_adapter``, shared by every ``lib_jobdesk*`` module.
"""

from jobdesk_adapter import harness_module

_module = harness_module("jobdesk_rt_pg")
setup, reset, Producer = _module.setup, _module.reset, _module.Producer
worker_cmds, VARIANTS, NOTES = _module.worker_cmds, _module.VARIANTS, _module.NOTES
