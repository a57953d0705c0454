"""``jobdesk webhooks`` in a subprocess: set, list, deliveries, deliver, remove."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.test_cli import jobdesk, json_of, one_error_line


def test_webhooks_from_the_command_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobdesk.db'}"
    assert jobdesk("migrate", db=db).returncode == 0
    refused = jobdesk("webhooks", "set", "http://example.com/hook", "-u", "alice", db=db)
    assert refused.returncode == 2
    assert "url" in one_error_line(refused)
    private = jobdesk("webhooks", "set", "https://127.0.0.1/hook", "-u", "alice", db=db)
    assert private.returncode == 2
    assert "private" in one_error_line(private)
    made = jobdesk("webhooks", "set", "https://93.184.215.14/hook", "--project", "book", db=db)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("whsec_")
    [webhook] = json_of(jobdesk("webhooks", "list", "--json", db=db))
    assert (webhook["project_id"], webhook["secret"]) == ("book", made.stdout.strip())
    assert json_of(jobdesk("webhooks", "deliveries", "--json", db=db)) == []
    assert json_of(jobdesk("webhooks", "deliver", "--json", db=db)) == {"sent": 0}
    gone = json_of(jobdesk("webhooks", "remove", webhook["id"], "--json", db=db))
    assert gone == {"removed": True}
    bad = jobdesk("webhooks", "redeliver", "not-a-number", db=db)
    assert bad.returncode == 2
