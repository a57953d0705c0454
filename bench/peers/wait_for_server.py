"""``wait_for_server.py URL -- COMMAND...``: run COMMAND once the jobdesk server answers.

The harness starts a benchmark's server and its remote workers together; a remote
worker checks its token with the server first, so it waits for ``/readyz``.
"""

from __future__ import annotations

import os
import sys
import time

import httpx


def main(server: str, command: list[str]) -> None:
    """Poll ``server``'s ``/readyz`` for up to 30 s, then replace this process with ``command``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server}/readyz", timeout=1).status_code == 200:
                os.execv(command[0], command)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{server} did not answer within 30 s")


if __name__ == "__main__":
    if "--" not in sys.argv[2:] or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    separator = sys.argv.index("--")
    main(sys.argv[1], sys.argv[separator + 1 :])
