"""Health alerts: the issues that opened and cleared since the last report, by e-mail and webhook, once."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from indexing.health import run_health_check
from indexing.models import HealthReport
from storages.models import FileStorage
from tests.conftest import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert_settings(settings):
    settings.IMALINK_ALERT_EMAILS = ["keeper@example.org", "backup@example.org"]
    settings.IMALINK_ALERT_WEBHOOK = None
    return settings


@pytest.fixture
def webhook():
    """A local HTTP server that records the JSON bodies POSTed to it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            server.bodies.append(
                {"path": self.path, "content_type": self.headers["Content-Type"], "json": json.loads(body)}
            )
            self.send_response(server.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.bodies, server.status = [], 204
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/imalink"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_unplugged_drive_is_mailed_once_and_again_when_it_returns(
    alert_settings, make_storage, allowed_root, mailoutbox
):
    storage = FileStorage.objects.get(storage_uuid=make_storage("Travel drive")["uuid"])
    away = allowed_root / "away"
    storage.full_path.rename(away)
    key = f"not_accessible:{storage.storage_uuid}"

    first = run_health_check()
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.subject == "ImaLink: 1 new issue"
    assert mail.to == ["keeper@example.org", "backup@example.org"]
    assert "Storage 'Travel drive' is not accessible" in mail.body and "[error]" in mail.body
    assert first.alerts == {"opened": [key], "cleared": [], "email": True, "webhook": None}
    assert HealthReport.objects.get(pk=first.pk).alerts == first.alerts

    second = run_health_check()
    assert len(mailoutbox) == 1, "an issue that persists is not mailed again"
    assert second.alerts == {"opened": [], "cleared": [], "email": False, "webhook": None}

    away.rename(storage.full_path)
    third = run_health_check()
    assert len(mailoutbox) == 2
    assert mailoutbox[1].subject == "ImaLink: 1 issue cleared"
    assert "Cleared:" in mailoutbox[1].body and "'Travel drive' is not accessible" in mailoutbox[1].body
    assert third.alerts["cleared"] == [key] and third.alerts["opened"] == [] and third.alerts["email"] is True


def test_low_space_is_mailed(alert_settings, make_storage, allowed_root, mailoutbox):
    storage = FileStorage.objects.get(storage_uuid=make_storage("Small drive")["uuid"])
    free_gb = shutil.disk_usage(storage.full_path).free / 1024**3
    alert_settings.IMALINK_LOW_SPACE_GB = free_gb + 100
    report = run_health_check()
    assert f"low_space:{storage.storage_uuid}" in report.alerts["opened"]
    assert len(mailoutbox) == 1 and "Storage 'Small drive' is low on space" in mailoutbox[0].body


def test_opened_and_cleared_in_one_mail(alert_settings, make_storage, allowed_root, mailoutbox):
    plugged = FileStorage.objects.get(storage_uuid=make_storage("A")["uuid"])
    unplugged = FileStorage.objects.get(storage_uuid=make_storage("B")["uuid"])
    unplugged.full_path.rename(allowed_root / "b-away")
    run_health_check()
    (allowed_root / "b-away").rename(unplugged.full_path)
    plugged.full_path.rename(allowed_root / "a-away")
    alert_settings.IMALINK_LOW_SPACE_GB = 10**9
    report = run_health_check()
    assert mailoutbox[-1].subject == "ImaLink: 2 new issues, 1 cleared"
    assert sorted(report.alerts["opened"]) == sorted(
        [f"not_accessible:{plugged.storage_uuid}", f"low_space:{unplugged.storage_uuid}"]
    )
    assert report.alerts["cleared"] == [f"not_accessible:{unplugged.storage_uuid}"]


def test_no_mail_without_recipients_or_issues(settings, make_storage, mailoutbox):
    settings.IMALINK_ALERT_EMAILS, settings.IMALINK_ALERT_WEBHOOK = [], None
    make_storage("Fine")
    assert run_health_check().alerts == {"opened": [], "cleared": [], "email": False, "webhook": None}
    settings.IMALINK_LOW_SPACE_GB = 10**9
    report = run_health_check()
    assert report.alerts["opened"] and report.alerts["email"] is False
    assert mailoutbox == []


def test_the_webhook_gets_the_changes_as_json(alert_settings, webhook, make_storage, allowed_root, mailoutbox):
    alert_settings.IMALINK_ALERT_WEBHOOK = webhook.url
    storage = FileStorage.objects.get(storage_uuid=make_storage("Travel drive")["uuid"])
    storage.full_path.rename(allowed_root / "away")
    report = run_health_check()
    assert report.alerts["webhook"] == "sent" and report.alerts["email"] is True
    assert len(webhook.bodies) == 1
    sent = webhook.bodies[0]
    assert sent["path"] == "/hooks/imalink" and sent["content_type"] == "application/json"
    assert sent["json"]["event"] == "imalink.health" and sent["json"]["report_id"] == report.pk
    assert [i["key"] for i in sent["json"]["opened"]] == [f"not_accessible:{storage.storage_uuid}"]
    assert sent["json"]["opened"][0]["message"].startswith("Storage 'Travel drive' is not accessible")
    assert sent["json"]["cleared"] == []
    assert sent["json"]["summary"] == {
        "total_storages": 1,
        "accessible_storages": 0,
        "total_files": 0,
        "total_size_gb": 0.0,
        "issues_count": 1,
    }
    run_health_check()
    assert len(webhook.bodies) == 1, "nothing changed, nothing posted"


def test_a_failing_webhook_is_retried_once_and_recorded(
    alert_settings, webhook, make_storage, allowed_root, mailoutbox
):
    alert_settings.IMALINK_ALERT_WEBHOOK = webhook.url
    webhook.status = 500
    storage = FileStorage.objects.get(storage_uuid=make_storage("X")["uuid"])
    storage.full_path.rename(allowed_root / "away")
    report = run_health_check()
    assert len(webhook.bodies) == 2
    assert report.alerts["webhook"] == "failed: HTTP 500" and report.alerts["email"] is True


def test_a_webhook_that_refuses_connections_is_recorded_and_the_report_kept(
    alert_settings, make_storage, allowed_root, mailoutbox
):
    alert_settings.IMALINK_ALERT_WEBHOOK = f"http://127.0.0.1:{free_port()}/hook"
    storage = FileStorage.objects.get(storage_uuid=make_storage("X")["uuid"])
    storage.full_path.rename(allowed_root / "away")
    report = run_health_check()
    stored = HealthReport.objects.get(pk=report.pk)
    assert stored.alerts["webhook"].startswith("failed: ConnectionError")
    assert stored.alerts["email"] is True and len(mailoutbox) == 1
    assert stored.issues[0]["key"] == f"not_accessible:{storage.storage_uuid}"


def test_a_failing_mail_server_is_recorded_not_raised(alert_settings, make_storage, allowed_root, mailoutbox):
    alert_settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    alert_settings.EMAIL_HOST, alert_settings.EMAIL_PORT, alert_settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    storage = FileStorage.objects.get(storage_uuid=make_storage("X")["uuid"])
    storage.full_path.rename(allowed_root / "away")
    report = run_health_check()
    assert report.alerts["email"] is False and "ConnectionRefusedError" in report.alerts["email_error"]
    assert HealthReport.objects.get(pk=report.pk).alerts["opened"] == [f"not_accessible:{storage.storage_uuid}"]
