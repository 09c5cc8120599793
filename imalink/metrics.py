"""Prometheus metrics at /metrics: API response times per route, and job and storage figures from the database.

The database figures are read at scrape time by one collector, in a fixed number of queries however many
storages and jobs there are. The response times live in this process, or in PROMETHEUS_MULTIPROC_DIR when
gunicorn runs several workers, so that every worker's requests are counted in one scrape.
"""

import hmac
import ipaddress
import os
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from imports.models import ImageFile
from jobs.models import Job
from storages.models import FileStorage

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROCESS_DIR is not None and not os.path.isdir(MULTIPROCESS_DIR):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={MULTIPROCESS_DIR!r} is not a folder: create it (empty) before start-up."
    )

# Anything else a client sends as a method would add a label value per distinct string.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REGISTRY = CollectorRegistry()

REQUEST_DURATION = Histogram(
    "imalink_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it, by URL pattern.",
    ["method", "route", "status"],
    # Up to a minute: a synchronous import or scan may wait IMALINK_SYNC_WAIT (30 s) before answering.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    # In multiprocess mode each worker writes its samples to a file and MultiProcessCollector reads them all;
    # registering the histogram here as well would count this worker's samples twice.
    registry=None if MULTIPROCESS_DIR else REGISTRY,
)


def route_label(request) -> str:
    """The URL pattern that served the request, never the raw path, so the label's values stay few."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.route or "/"  # the empty pattern is the home page


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in KNOWN_METHODS else "other"
        status = f"{response.status_code // 100}xx"
        REQUEST_DURATION.labels(method, route_label(request), status).observe(time.perf_counter() - started)
        return response


class DatabaseCollector(Collector):
    """Job and storage figures, read from the database on each scrape (three queries)."""

    def collect(self):
        yield from self.collect_jobs()
        yield from self.collect_storages()

    def collect_jobs(self):

        duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        timed = Q(status__in=Job.FINISHED, started_at__isnull=False, finished_at__isnull=False)
        rows = (
            Job.objects.order_by()
            .values("kind", "status")
            .annotate(jobs=Count("id"), timed=Count("id", filter=timed), seconds=Sum(duration, filter=timed))
        )
        jobs = GaugeMetricFamily(
            "imalink_jobs_total",
            "Jobs in the database, by kind and status (a gauge: a job moves from queued to running to finished).",
            labels=["kind", "status"],
        )
        durations = SummaryMetricFamily(
            "imalink_job_duration_seconds",
            "Run time (finished_at - started_at) of finished jobs, by kind and outcome.",
            labels=["kind", "status"],
        )
        for row in rows:
            jobs.add_metric([row["kind"], row["status"]], row["jobs"])
            if row["timed"]:
                durations.add_metric([row["kind"], row["status"]], row["timed"], row["seconds"].total_seconds())
        yield jobs
        yield durations

    def collect_storages(self):

        labels = ["storage", "uuid"]
        free = GaugeMetricFamily(
            "imalink_storage_free_bytes", "Free space on the storage's drive at the last check.", labels=labels
        )
        total = GaugeMetricFamily(
            "imalink_storage_total_bytes", "Size of the storage's drive at the last check.", labels=labels
        )
        accessible = GaugeMetricFamily(
            "imalink_storage_accessible",
            "1 if the storage folder was reachable at the last check, else 0.",
            labels=labels,
        )
        files = GaugeMetricFamily(
            "imalink_storage_files", "Image files recorded in the storage, by status.", labels=[*labels, "status"]
        )
        missing = GaugeMetricFamily(
            "imalink_storage_missing_files",
            "Image files recorded in the storage but not found by the last scan.",
            labels=labels,
        )
        scan_age = GaugeMetricFamily(
            "imalink_storage_last_scan_age_seconds",
            "Seconds since the storage was last scanned (absent if never).",
            labels=labels,
        )

        counts = {}
        for row in ImageFile.objects.order_by().values("file_storage_id", "status").annotate(n=Count("id")):
            counts[row["file_storage_id"], row["status"]] = row["n"]
        now = timezone.now()
        fields = ("id", "storage_uuid", "display_name", "free_bytes", "total_bytes", "is_accessible", "last_scan_at")
        for storage in FileStorage.objects.only(*fields):
            key = [storage.display_name, str(storage.storage_uuid)]
            # Unknown figures (never checked, never scanned) are left out rather than reported as zero.
            if storage.free_bytes is not None:
                free.add_metric(key, storage.free_bytes)
            if storage.total_bytes is not None:
                total.add_metric(key, storage.total_bytes)
            if storage.is_accessible is not None:
                accessible.add_metric(key, 1 if storage.is_accessible else 0)
            for status in ImageFile.Status.values:
                files.add_metric([*key, status], counts.get((storage.id, status), 0))
            missing.add_metric(key, counts.get((storage.id, ImageFile.Status.MISSING), 0))
            if storage.last_scan_at is not None:
                scan_age.add_metric(key, (now - storage.last_scan_at).total_seconds())
        yield from (free, total, accessible, files, missing, scan_age)


REGISTRY.register(DatabaseCollector())
if MULTIPROCESS_DIR:
    from prometheus_client import multiprocess

    multiprocess.MultiProcessCollector(REGISTRY, path=MULTIPROCESS_DIR)


def _address_allowed(remote_addr: str) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
    return any(address in network for network in settings.IMALINK_METRICS_ALLOW)


def _token_allowed(request) -> bool:
    expected = settings.IMALINK_METRICS_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), expected.encode())


@require_safe
def metrics_view(request):
    """The Prometheus scrape target: no login, but a bearer token or an allowed address."""
    if not (_token_allowed(request) or _address_allowed(request.META.get("REMOTE_ADDR", ""))):
        return HttpResponseForbidden()
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(REGISTRY), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
