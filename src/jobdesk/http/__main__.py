"""``python -m jobdesk.http [--db URL] [--host HOST] [--port PORT]``: serve the API."""

from __future__ import annotations

import argparse

from jobdesk.http import DEFAULT_SERVE_URL, serve


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m jobdesk.http", description=__doc__)
    parser.add_argument("--db", default=DEFAULT_SERVE_URL, help="database URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    options = parser.parse_args(argv)
    serve(options.db, options.host, options.port, log_level=options.log_level)


if __name__ == "__main__":
    main()
