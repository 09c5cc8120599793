"""/metrics: Prometheus figures checked against known database and disk state, response times, access control."""

import os
import shutil
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from imalink.metrics import REQUEST_DURATION
from imports.models import ImageFile, ImportSession
from indexing.rewrite import import_folder
from indexing.scanner import scan_storage
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import REPO, subprocess_env
from tests.imalink.test_settings import start

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_histogram():
    REQUEST_DURATION.clear()  # the histogram lives for the whole process; each test counts its own requests


def scrape(client, **extra) -> dict:
    """{(sample name, frozenset of labels): value} from one GET /metrics."""
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def labels(**kw) -> frozenset:
    return frozenset(kw.items())


def with_name(samples: dict, name: str) -> dict:
    return {key[1]: value for key, value in samples.items() if key[0] == name}


def add_job(kind, status, seconds=None):
    job = Job.objects.create(kind=kind, status=status)
    if seconds is not None:
        started = timezone.now() - timedelta(hours=1)
        finished = started + timedelta(seconds=seconds) if status in Job.FINISHED else None
        Job.objects.filter(pk=job.pk).update(started_at=started, finished_at=finished)


def test_it_counts_jobs_and_sums_their_durations(client):
    add_job("metrics-scan", Job.Status.SUCCEEDED, 10)
    add_job("metrics-scan", Job.Status.SUCCEEDED, 2.5)
    add_job("metrics-scan", Job.Status.FAILED, 4)
    add_job("metrics-scan", Job.Status.RUNNING, 0)  # started, not finished: no duration yet
    add_job("metrics-scan", Job.Status.QUEUED)
    add_job("metrics-import", Job.Status.CANCELLED)  # cancelled before it started: counted, never timed
    add_job("metrics-import", Job.Status.SUCCEEDED, 0.25)

    samples = scrape(client)

    jobs = {k: v for k, v in with_name(samples, "imalink_jobs_total").items() if dict(k)["kind"].startswith("metrics-")}
    assert jobs == {
        labels(kind="metrics-scan", status="succeeded"): 2,
        labels(kind="metrics-scan", status="failed"): 1,
        labels(kind="metrics-scan", status="running"): 1,
        labels(kind="metrics-scan", status="queued"): 1,
        labels(kind="metrics-import", status="cancelled"): 1,
        labels(kind="metrics-import", status="succeeded"): 1,
    }
    count = with_name(samples, "imalink_job_duration_seconds_count")
    total = with_name(samples, "imalink_job_duration_seconds_sum")
    assert count[labels(kind="metrics-scan", status="succeeded")] == 2
    assert total[labels(kind="metrics-scan", status="succeeded")] == pytest.approx(12.5)
    assert (
        count[labels(kind="metrics-scan", status="failed")],
        total[labels(kind="metrics-scan", status="failed")],
    ) == (1, 4)
    assert total[labels(kind="metrics-import", status="succeeded")] == pytest.approx(0.25)
    assert labels(kind="metrics-scan", status="running") not in count
    assert labels(kind="metrics-import", status="cancelled") not in count


@pytest.fixture
def two_storages(make_storage, allowed_root, corpus):
    """Storage A holds three imported files: one intact, one deleted and one edited on disk, then scanned."""
    a = FileStorage.objects.get(storage_uuid=make_storage("Storage A")["uuid"])
    b = FileStorage.objects.get(storage_uuid=make_storage("Storage B")["uuid"])
    card = allowed_root / "card"
    card.mkdir()
    for name in ("DSCN0010.jpg", "jolla.jpg", "door-knocker.jpg"):
        shutil.copy(corpus / "jpeg/camera" / name, card / name)
    session = ImportSession.objects.create(title="Card", file_storage=a)
    assert import_folder(session_id=session.pk, source_path=str(card)).imported == 3
    deleted, edited = (
        a.full_path / f.relative_path
        for f in ImageFile.objects.filter(file_storage=a).order_by("original_filename")[:2]
    )
    deleted.unlink()
    edited.write_bytes(edited.read_bytes() + b"\x00edited")
    report = scan_storage(a)
    assert (len(report.missing_files), len(report.modified_files)) == (1, 1)
    return FileStorage.objects.get(pk=a.pk), FileStorage.objects.get(pk=b.pk)


def test_it_reports_each_storage(client, two_storages):
    a, b = two_storages
    FileStorage.objects.filter(pk=b.pk).update(is_accessible=False, free_bytes=None, total_bytes=None)
    key_a = {"storage": "Storage A", "uuid": str(a.storage_uuid)}
    key_b = {"storage": "Storage B", "uuid": str(b.storage_uuid)}

    samples = scrape(client)

    files = with_name(samples, "imalink_storage_files")
    assert {status: files[labels(**key_a, status=status)] for status in ("present", "missing", "modified")} == {
        "present": 1,
        "missing": 1,
        "modified": 1,
    }
    assert {status: files[labels(**key_b, status=status)] for status in ("present", "missing", "modified")} == {
        "present": 0,
        "missing": 0,
        "modified": 0,
    }
    assert with_name(samples, "imalink_storage_missing_files") == {labels(**key_a): 1, labels(**key_b): 0}
    assert a.free_bytes and a.total_bytes
    assert samples["imalink_storage_free_bytes", labels(**key_a)] == a.free_bytes
    assert samples["imalink_storage_total_bytes", labels(**key_a)] == a.total_bytes
    assert with_name(samples, "imalink_storage_accessible") == {labels(**key_a): 1, labels(**key_b): 0}
    # Unknown figures are absent, not zero: B's space was never measured and B was never scanned.
    assert labels(**key_b) not in with_name(samples, "imalink_storage_free_bytes")
    assert labels(**key_b) not in with_name(samples, "imalink_storage_last_scan_age_seconds")
    age = samples["imalink_storage_last_scan_age_seconds", labels(**key_a)]
    assert age == pytest.approx((timezone.now() - a.last_scan_at).total_seconds(), abs=5)
    assert age >= 0


def test_it_reads_the_database_in_a_fixed_number_of_queries(client, make_storage, django_assert_num_queries):
    make_storage("One")
    add_job("metrics-scan", Job.Status.SUCCEEDED, 1)
    with django_assert_num_queries(3):
        scrape(client)
    for n in range(4):
        make_storage(f"More {n}")
        add_job(f"metrics-kind-{n}", Job.Status.FAILED, n)
    with django_assert_num_queries(3):
        samples = scrape(client)
    assert len(with_name(samples, "imalink_storage_missing_files")) == 5


def test_it_times_api_requests_by_route_not_by_path(client, api, make_storage):
    uuid = make_storage()["uuid"]
    for _ in range(3):
        assert api.get("/api/v1/file-storage/").status_code == 200
    assert api.get(f"/api/v1/file-storage/{uuid}").status_code == 200
    assert api.get("/api/v1/file-storage/00000000-0000-4000-8000-000000000000").status_code == 404
    client.get("/no/such/page")

    samples = scrape(client)

    count = with_name(samples, "imalink_http_request_duration_seconds_count")
    assert count[labels(method="GET", route="api/v1/file-storage/", status="2xx")] == 3
    assert count[labels(method="GET", route="api/v1/file-storage/<uuid>", status="2xx")] == 1
    assert count[labels(method="GET", route="api/v1/file-storage/<uuid>", status="4xx")] == 1
    assert count[labels(method="POST", route="api/v1/file-storage/create", status="2xx")] == 1
    assert count[labels(method="GET", route="unmatched", status="4xx")] == 1
    assert not any(uuid in dict(key)["route"] or "such" in dict(key)["route"] for key in count)
    buckets = with_name(samples, "imalink_http_request_duration_seconds_bucket")
    assert buckets[labels(method="GET", route="api/v1/file-storage/", status="2xx", le="+Inf")] == 3
    assert (
        samples[
            "imalink_http_request_duration_seconds_sum",
            labels(method="GET", route="api/v1/file-storage/", status="2xx"),
        ]
        > 0
    )


def test_an_unknown_method_does_not_become_a_label(client):
    client.generic("BREW", "/metrics")
    count = with_name(scrape(client), "imalink_http_request_duration_seconds_count")
    assert count[labels(method="other", route="metrics", status="4xx")] == 1


# --- access ---------------------------------------------------------------------------------------


def test_it_refuses_another_address_without_a_token(client):
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 403
    assert response.content == b""


def test_it_accepts_the_bearer_token_from_anywhere(client, settings):
    settings.IMALINK_METRICS_TOKEN = "scrape-token-for-the-tests"
    scrape(client, REMOTE_ADDR="10.1.2.3", headers={"Authorization": "Bearer scrape-token-for-the-tests"})


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token-for-the-tests", "Bearer ", "Basic scrape-token-for-the-tests", "scrape-token-for-the-tests"],
)
def test_it_refuses_a_wrong_token(client, settings, header):
    settings.IMALINK_METRICS_TOKEN = "scrape-token-for-the-tests"
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3", headers={"Authorization": header})
    assert response.status_code == 403 and response.content == b""


def test_no_token_is_configured_so_an_empty_bearer_is_refused(client, settings):
    settings.IMALINK_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", headers={"Authorization": "Bearer "}).status_code == 403


def test_it_accepts_an_allowed_network(client, settings):
    import ipaddress

    settings.IMALINK_METRICS_ALLOW = [ipaddress.ip_network("10.0.0.0/8")]
    scrape(client, REMOTE_ADDR="10.1.2.3")
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 is no longer in the list


def test_an_ipv4_client_on_a_dual_stack_socket_counts_as_ipv4(client):
    scrape(client, REMOTE_ADDR="::ffff:127.0.0.1")
    scrape(client, REMOTE_ADDR="::1")


def test_it_needs_no_login_and_answers_only_reads(client):
    assert client.get("/metrics").status_code == 200
    assert client.post("/metrics").status_code == 405


PROBE = "import django; django.setup(); from django.conf import settings; print(settings.IMALINK_METRICS_ALLOW)"


def test_the_allow_list_is_read_from_the_environment(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "IMALINK_VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SETTINGS_MODULE": "imalink.settings",
            "IMALINK_METRICS_ALLOW": " 10.0.0.0/8 , fd00::/8,192.168.1.7",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "IPv4Network('10.0.0.0/8'), IPv6Network('fd00::/8'), IPv4Network('192.168.1.7/32')" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "IMALINK_METRICS_ALLOW",
            "127.0.0.1,localhost",
            "IMALINK_METRICS_ALLOW: 'localhost' does not appear to be an IPv4 or IPv6 network",
        ),
        ("IMALINK_METRICS_ALLOW", "10.0.0.300", "IMALINK_METRICS_ALLOW: '10.0.0.300'"),
        ("IMALINK_METRICS_ALLOW", "10.1.2.3/8", "has host bits set"),
        ("IMALINK_METRICS_TOKEN", "short", "IMALINK_METRICS_TOKEN must be at least 16 characters"),
    ],
)
def test_a_bad_metrics_setting_stops_start_up(tmp_path, name, value, message):
    result = start(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


# --- several web worker processes -----------------------------------------------------------------

WORKER = """
import django, sys
django.setup()
from django.test import Client
client = Client(HTTP_HOST="localhost")
for _ in range(int(sys.argv[1])):
    assert client.get("/no/such/page").status_code == 404
if sys.argv[2] == "scrape":
    print(client.get("/metrics").content.decode())
"""


def test_several_worker_processes_are_counted_together(transactional_db, tmp_path):
    """What gunicorn's workers do under `make run`: each writes to PROMETHEUS_MULTIPROC_DIR,
    any one scrape sums them."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = subprocess_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=shared, DJANGO_SETTINGS_MODULE="imalink.settings")

    def worker(requests, then):
        result = subprocess.run(
            [sys.executable, "-c", WORKER, str(requests), then],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    worker(2, "exit")
    worker(3, "exit")
    text = worker(1, "scrape")
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "imalink_http_request_duration_seconds_count"
    }
    assert counts[("unmatched", "4xx")] == 6
    assert "imalink_storage_files" in text


def test_a_missing_multiprocess_folder_stops_start_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        IMALINK_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SETTINGS_MODULE="imalink.settings",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "nowhere"),
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); import imalink.urls"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "is not a folder" in result.stderr
