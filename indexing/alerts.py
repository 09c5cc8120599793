"""Health alerts: after a HealthReport is stored, tell people what changed since the previous report.

Only issues that opened or cleared are sent, once, by e-mail and to an optional webhook; an issue that
persists is not repeated every day. A failed delivery is logged and recorded on the report, never raised.
"""

import logging
import time

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q

from .models import HealthReport

logger = logging.getLogger("imalink.alerts")

WEBHOOK_TIMEOUT_S = 5
WEBHOOK_RETRY_DELAY_S = 1


def _previous_report(report: HealthReport) -> HealthReport | None:
    earlier = Q(created_at__lt=report.created_at) | Q(created_at=report.created_at, pk__lt=report.pk)
    return HealthReport.objects.filter(earlier).order_by("-created_at", "-id").first()


def health_changes(report: HealthReport) -> tuple[list[dict], list[dict]]:
    """(opened, cleared) issues compared by key with the previous report; the first report opens them all."""
    previous = _previous_report(report)
    before = {issue["key"]: issue for issue in (previous.issues if previous else [])}
    now = {issue["key"]: issue for issue in report.issues}
    opened = [issue for key, issue in now.items() if key not in before]
    cleared = [issue for key, issue in before.items() if key not in now]
    return opened, cleared


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def alert_subject(opened: list, cleared: list) -> str:
    parts = []
    if opened:
        parts.append(f"{_plural(len(opened), 'new issue')}")
    if cleared:
        parts.append(f"{len(cleared)} cleared" if opened else f"{_plural(len(cleared), 'issue')} cleared")
    return "ImaLink: " + ", ".join(parts)


def alert_body(report: HealthReport, opened: list, cleared: list) -> str:
    summary = report.summary or {}
    lines = [f"ImaLink health check of {report.created_at:%Y-%m-%d %H:%M %Z} (report {report.pk}).", ""]
    if opened:
        lines.append("New issues:")
        lines += [f"  - [{issue.get('severity', 'error')}] {issue['message']}" for issue in opened]
        lines.append("")
    if cleared:
        lines.append("Cleared:")
        lines += [f"  - {issue['message']}" for issue in cleared]
        lines.append("")
    lines.append(
        f"Storages: {summary.get('accessible_storages', '?')}/{summary.get('total_storages', '?')} accessible; "
        f"files: {summary.get('total_files', '?')}; open issues: {len(report.issues)}."
    )
    return "\n".join(lines) + "\n"


def _send_email(report, opened, cleared) -> tuple[bool, str | None]:
    recipients = settings.IMALINK_ALERT_EMAILS
    if not recipients:
        return False, None
    try:
        send_mail(
            alert_subject(opened, cleared), alert_body(report, opened, cleared), settings.DEFAULT_FROM_EMAIL, recipients
        )
    except Exception as exc:  # smtplib, socket and ssl all raise their own types; an alert must not break the check
        logger.warning(
            "health report %s: the alert e-mail to %s failed: %s: %s",
            report.pk,
            ", ".join(recipients),
            type(exc).__name__,
            exc,
        )
        return False, f"{type(exc).__name__}: {exc}"[:300]
    return True, None


def _post_webhook(report, opened, cleared) -> str | None:
    url = settings.IMALINK_ALERT_WEBHOOK
    if not url:
        return None
    payload = {
        "event": "imalink.health",
        "report_id": report.pk,
        "opened": opened,
        "cleared": cleared,
        "summary": report.summary,
    }
    problem = None
    for attempt in (1, 2):
        try:
            response = requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S)
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.ok:
                return "sent"
            problem = f"HTTP {response.status_code}"
        logger.warning("health report %s: webhook attempt %d failed: %s", report.pk, attempt, problem)
        if attempt == 1:
            time.sleep(WEBHOOK_RETRY_DELAY_S)
    return f"failed: {problem}"[:300]


def send_health_alerts(report: HealthReport) -> dict:
    """Send what opened and cleared since the previous report, record it on `report.alerts`, and return it."""
    try:
        opened, cleared = health_changes(report)
        alerts = {
            "opened": [i["key"] for i in opened],
            "cleared": [i["key"] for i in cleared],
            "email": False,
            "webhook": None,
        }
        if opened or cleared:
            alerts["email"], email_error = _send_email(report, opened, cleared)
            if email_error:
                alerts["email_error"] = email_error
            alerts["webhook"] = _post_webhook(report, opened, cleared)
    except Exception as exc:  # the report is already stored; losing an alert must not lose the check
        logger.exception("health report %s: alerts could not be worked out", report.pk)
        alerts = {
            "opened": [],
            "cleared": [],
            "email": False,
            "webhook": None,
            "error": f"{type(exc).__name__}: {exc}"[:300],
        }
    HealthReport.objects.filter(pk=report.pk).update(alerts=alerts)
    report.alerts = alerts
    if alerts["opened"] or alerts["cleared"]:
        logger.info(
            "health report %s: %d opened, %d cleared, e-mail %s, webhook %s",
            report.pk,
            len(alerts["opened"]),
            len(alerts["cleared"]),
            alerts["email"],
            alerts["webhook"],
        )
    return alerts
