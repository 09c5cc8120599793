"""Maintenance that runs by itself: the beat schedules, the weekly script, and the monthly validation that
advances a slice per night from its checkpoint.
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from imports.models import ImportSession
from indexing import tasks
from indexing.models import HealthReport, ValidationCheckpoint
from indexing.rewrite import import_folder
from indexing.validation import validate_incrementally
from indexing.writer import index_status
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import REPO, stop_process, subprocess_env, wait_for_line
from tests.seed import seed_bash_block


def import_some(
    storage,
    allowed_root,
    corpus,
    names=("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg", "png/hopper.png", "jpeg/camera/img_1771.jpg"),
):
    card = allowed_root / f"card-{storage.pk}"
    card.mkdir()
    for name in names:
        shutil.copy(corpus / name, card)
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    return session


@pytest.mark.django_db
def test_the_data_migration_installs_the_schedules_with_expiry():
    PeriodicTask.objects.all().delete()
    migration = importlib.import_module("indexing.migrations.0004_install_schedules")
    migration.install_schedules(apps, None)
    installed = {t.task: t for t in PeriodicTask.objects.all()}
    assert set(installed) == {
        "indexing.daily_health_check",
        "indexing.weekly_maintenance",
        "indexing.nightly_validation_slice",
    }
    assert all(t.expire_seconds and t.enabled and t.crontab_id for t in installed.values())
    assert installed["indexing.weekly_maintenance"].crontab.day_of_week == "0"
    migration.install_schedules(apps, None)  # running it again changes nothing
    assert PeriodicTask.objects.count() == 3


def test_beat_really_fires_on_a_one_second_schedule(celery_worker, tmp_path, test_queue, make_storage):
    make_storage("Main")
    PeriodicTask.objects.all().delete()
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="test: health every second", task="indexing.daily_health_check", interval=every_second, expire_seconds=30
    )
    log = tmp_path / "beat.log"
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imalink",
            "beat",
            "--loglevel",
            "INFO",
            "--max-interval",
            "1",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        ],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_line(log, "beat: Starting", beat)
        deadline = time.monotonic() + 60
        while not HealthReport.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        stop_process(beat)
    report = HealthReport.objects.first()
    assert report is not None, log.read_text()[-3000:]
    assert report.summary["total_storages"] == 1
    assert Job.objects.filter(kind="health_check", status="succeeded").exists()


@pytest.mark.django_db
def test_weekly_maintenance_starts_index_and_scan_jobs_for_available_storages_only(
    make_storage, allowed_root, test_queue
):
    here = FileStorage.objects.get(storage_uuid=make_storage("Here")["uuid"])
    gone = FileStorage.objects.get(storage_uuid=make_storage("Gone")["uuid"])
    gone.full_path.rename(allowed_root / "elsewhere")
    ids = tasks.weekly_maintenance()
    started = Job.objects.filter(pk__in=ids)
    assert sorted(started.values_list("kind", flat=True)) == ["index_storage", "scan"]
    assert set(started.values_list("storage_id", flat=True)) == {here.pk}


def test_the_seed_weekly_script_runs_as_written_and_leaves_every_index_current(
    imalink_server, make_storage, allowed_root, corpus, have_curl
):
    from django.contrib.auth import get_user_model

    from imalink.models import ApiToken

    token = ApiToken.issue(user=get_user_model().objects.get(username="admin"))[1]
    storages = [FileStorage.objects.get(storage_uuid=make_storage(name)["uuid"]) for name in ("One", "Two")]
    for storage in storages:
        import_some(storage, allowed_root, corpus)
    photo = storages[0].image_files.first().photo
    photo.rating = 5
    photo.save()  # the indexes are now stale
    assert not index_status(storages[0])["healthy"]
    script = seed_bash_block("Workflow 7", "Weekly Index Regeneration")
    # As written; only the host, and the Authorization header on each curl, are added.
    script = script.replace("http://localhost:8000", imalink_server.url).replace(
        "curl ", f'curl -H "Authorization: Bearer {token}" '
    )
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for storage in storages:
        assert (
            f"Processing storage: {storage.storage_uuid}" in run.stdout
            and f"Completed storage: {storage.storage_uuid}" in run.stdout
        )
    answers = [
        json.loads(line)
        for line in run.stdout.replace("}Completed", "}\nCompleted").replace("}{", "}\n{").splitlines()
        if line.startswith("{")
    ]
    assert len(answers) == 4 and all(a["success"] for a in answers), answers
    assert "Maintenance completed" in run.stdout
    for storage in storages:
        status = index_status(storage)
        assert status["healthy"], status
    assert json.loads(
        (storages[0].full_path / f"imports/session_{photo.files.first().import_session_id}.json").read_text()
    )


@pytest.mark.django_db
def test_the_monthly_validation_advances_a_slice_per_night_and_finds_rot_late_in_the_cycle(
    make_storage, allowed_root, corpus
):
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    import_some(storage, allowed_root, corpus)
    rows = list(storage.image_files.order_by("relative_path"))
    last = storage.full_path / rows[-1].relative_path
    stat = last.stat()
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    os.utime(last, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # bit rot: size and time as before

    slices = []
    for _ in range(10):
        result = validate_incrementally(storage, budget_s=0)  # each night's budget runs out after one file
        slices.append(result)
        if result.get("complete"):
            break
    assert len(slices) == len(rows), [s.get("files_checked") for s in slices]
    assert [s["files_checked"] for s in slices] == [1] * len(rows)
    assert [c["path"] for s in slices for c in s["corrupted_files"]] == [rows[-1].relative_path]
    checkpoint = ValidationCheckpoint.objects.get(storage=storage)
    assert checkpoint.completed_at and checkpoint.cursor == "" and checkpoint.files_checked_in_cycle == len(rows)
    assert validate_incrementally(storage, budget_s=0)["skipped"] is True  # the month is done
    ValidationCheckpoint.objects.filter(pk=checkpoint.pk).update(cycle_started_at=timezone.now() - timedelta(days=31))
    assert validate_incrementally(storage, budget_s=None)["complete"] is True  # a new cycle starts
