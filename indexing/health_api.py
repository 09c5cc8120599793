"""Routes under /api/v1/health/: the stored health reports, and POST /check to run the health check now
(under the sync/async rule of DESIGN §5)."""

from datetime import datetime
from typing import Any

from django.core.paginator import Paginator
from ninja import Query, Router, Schema

from imalink.errors import NotFound
from imalink.schemas import JobAccepted, ok, responses
from jobs.answers import job_answer

from .models import HealthReport

health_router = Router(tags=["health"])


class IssueOut(Schema):
    key: str
    severity: str
    message: str
    storage_uuid: str | None = None
    link: str | None = None  # where the issue's photos are listed (few_copies: the under-protected photos)


class HealthReportOut(Schema):
    id: int
    created_at: datetime
    summary: dict[str, Any]
    storages: list[dict[str, Any]]
    issues: list[IssueOut]
    growth: dict[str, Any]
    alerts: dict[str, Any]
    healthy: bool

    @staticmethod
    def from_report(report: HealthReport) -> dict:
        return {
            "id": report.pk,
            "created_at": report.created_at,
            "summary": report.summary,
            "storages": report.storages,
            "issues": report.issues,
            "growth": report.growth,
            "alerts": report.alerts,
            "healthy": report.healthy,
        }


class HealthReportList(Schema):
    reports: list[HealthReportOut]
    count: int
    page: int
    pages: int


class HealthCheckOut(HealthReportOut):
    job_id: int
    status: str


@health_router.get("/reports/latest", response=responses(HealthReportOut), summary="The newest health report")
def latest_report(request):
    report = HealthReport.objects.order_by("-created_at", "-id").first()
    if report is None:
        raise NotFound("No health report yet: run one with POST /api/v1/health/check.", code="no_health_report")
    return ok(HealthReportOut.from_report(report))


@health_router.get("/reports/", response=responses(HealthReportList), summary="Health reports, newest first")
def list_reports(request, page: int = Query(1, ge=1), page_size: int = Query(30, ge=1, le=500)):
    paginator = Paginator(HealthReport.objects.order_by("-created_at", "-id"), page_size)
    current = paginator.get_page(page)
    return ok(
        {
            "reports": [HealthReportOut.from_report(r) for r in current.object_list],
            "count": paginator.count,
            "page": current.number,
            "pages": paginator.num_pages,
        }
    )


def _with_report(data: dict) -> dict:
    """A finished check answers with the report it stored, not just the report's id."""
    report = HealthReport.objects.get(pk=data["report_id"])
    return {**HealthReportOut.from_report(report), "job_id": data["job_id"], "status": data["status"]}


@health_router.post(
    "/check",
    response=responses(HealthCheckOut, _202=JobAccepted),
    summary="Run the health check now and store its report",
)
def run_check(request, wait: float | None = Query(None, ge=0)):
    return job_answer(request, kind="health_check", wait=wait, on_result=_with_report)
