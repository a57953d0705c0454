"""``python -m jobdesk``: the ``jobdesk`` command line (see :mod:`jobdesk.cli`)."""

from jobdesk.cli import app

if __name__ == "__main__":
    app(prog_name="jobdesk")
