"""Job's move from indexing to jobs (jobs/0001, indexing/0008, jobs/0002) keeps every row of a database made before it.

The test database is taken back to main as it was before the move, filled through the historical models, and
migrated forward (and back) on SQLite and PostgreSQL alike: every table is compared row by row.
"""

import copy
import datetime

import pytest
from django.apps import apps as global_apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.management import create_contenttypes
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import PeriodicTask

from imports.models import ImageFile, ImportSession, Photo
from jobs.models import Job
from jobs.tasks import sweep_stale_jobs
from storages.models import FileStorage

# The leaf migrations of ImaLink's own apps on main before the move; the other apps stay at their latest.
BEFORE_THE_MOVE = {"storages": "0001_initial", "imports": "0002_file_totals", "indexing": "0007_index_revisions"}
SWEEP = "ImaLink: sweep jobs whose worker is gone"
AT = datetime.datetime(2026, 11, 30, 21, 15, 7, 123456, tzinfo=datetime.UTC)


def leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def before_the_move():
    """The migration nodes of a database made by main before the move (the jobs app has none)."""
    return [(app, BEFORE_THE_MOVE.get(app, name)) for app, name in leaf_nodes() if app != "jobs"]


@pytest.fixture
def migrate(transactional_db):
    """migrate(nodes) takes the test database to those nodes and returns their historical apps.

    Whatever happens, the database is left at the latest migrations, as every other test expects it.
    """

    def _migrate(nodes, *, unapply=()):
        executor = MigrationExecutor(connection)
        executor.migrate([*nodes, *((app, None) for app in unapply)])
        ContentType.objects.clear_cache()
        return MigrationExecutor(connection).loader.project_state(nodes).apps

    try:
        yield _migrate
    finally:
        MigrationExecutor(connection).migrate(leaf_nodes())
        ContentType.objects.clear_cache()


def plain(value):
    return bytes(value) if isinstance(value, memoryview) else value


def every_row():
    """{table: its rows as sorted dicts of raw column values}, for every table but the migration recorder's."""
    with connection.cursor() as cursor:
        tables = sorted(set(connection.introspection.table_names(cursor)) - {"django_migrations"})
        rows = {}
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            columns = [column[0] for column in cursor.description]
            rows[table] = sorted(
                (dict(zip(columns, map(plain, row), strict=True)) for row in cursor.fetchall()), key=repr
            )
    return rows


def seed(apps):
    """A user, a storage, a session with a photo and its file, a batch job with children and a job history."""
    UserThen = apps.get_model("auth", "User")
    PermissionThen = apps.get_model("auth", "Permission")
    ContentTypeThen = apps.get_model("contenttypes", "ContentType")
    LogEntryThen = apps.get_model("admin", "LogEntry")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTaskThen = apps.get_model("django_celery_beat", "PeriodicTask")
    FileStorageThen = apps.get_model("storages", "FileStorage")
    Author = apps.get_model("imports", "Author")
    ImportSessionThen = apps.get_model("imports", "ImportSession")
    PhotoThen = apps.get_model("imports", "Photo")
    ImageFileThen = apps.get_model("imports", "ImageFile")
    JobThen = apps.get_model("indexing", "Job")

    # Main before the move had no jobs app. A jobs.job content type can be here all the same, made by the
    # post_migrate of a flush or of an earlier test's `migrate imports` (which leaves the jobs app unapplied).
    ContentTypeThen.objects.filter(app_label="jobs").delete()
    user = UserThen.objects.create(username="kari", email="kari@example.org", is_staff=True)
    storage = FileStorageThen.objects.create(
        directory_name="imalink_20261130_deadbeef", base_path="/media/drive", display_name="Drive"
    )
    author = Author.objects.create(name="Kari")
    session = ImportSessionThen.objects.create(title="Card", file_storage=storage, default_author=author)
    photo = PhotoThen.objects.create(
        hothash="a" * 64, author=author, hotpreview=b"\xff\xd8\xff\xe0 preview", tags=["fjord", "Ål"], rating=4
    )
    ImageFileThen.objects.create(
        photo=photo,
        import_session=session,
        file_storage=storage,
        relative_path="2026/11/DSCN0010.jpg",
        original_filename="DSCN0010.jpg",
        file_format="jpeg",
        file_size=161713,
        mtime_ns=1_700_000_000_123_456_789,
        checksum="0123456789abcdef0123456789abcdef",
    )

    batch = JobThen.objects.create(
        kind="index_batch",
        status="running",
        storage=storage,
        created_by=user,
        params={"storage_ids": [storage.pk], "force": True},
        progress={"done": 1, "total": 2, "message": "Storage 1 of 2"},
        celery_task_id="2b0e6c1e-4f5b-4c8e-9a43-6c1f0b3c7d21",
        enqueued_at=AT,
        worker="worker-1:4242",
        heartbeat_at=AT,
        started_at=AT,
    )
    JobThen.objects.create(
        kind="index_generation",
        status="succeeded",
        parent=batch,
        storage=storage,
        created_by=user,
        progress={"done": 3, "total": 3},
        result={"written": ["index.json", "imports/session_1.json"], "sessions": 1},
        started_at=AT,
        finished_at=AT,
    )
    JobThen.objects.create(
        kind="index_generation",
        status="failed",
        parent=batch,
        storage=storage,
        errors=[{"code": "storage_unavailable", "message": "Drive not mounted: /media/drive (Ø)"}],
        finished_at=AT,
    )
    JobThen.objects.create(
        kind="import", status="cancelled", session=session, storage=storage, cancel_requested=True, finished_at=AT
    )
    JobThen.objects.create(kind="accessibility_check")  # queued, linked to nothing

    # The content type exists already when the test database's own was renamed back; a database from main has one.
    content_type, _ = ContentTypeThen.objects.get_or_create(app_label="indexing", model="job")
    view_job, _ = PermissionThen.objects.get_or_create(
        content_type=content_type, codename="view_job", defaults={"name": "Can view job"}
    )
    rerun_job = PermissionThen.objects.create(content_type=content_type, codename="rerun_job", name="Can rerun job")
    user.user_permissions.add(view_job, rerun_job)
    LogEntryThen.objects.create(
        user=user,
        content_type=content_type,
        object_id=str(batch.pk),
        object_repr=f"Job #{batch.pk} index_batch (running)",
        action_flag=2,
        change_message="Cancelled from the admin",
    )

    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTaskThen.objects.update_or_create(
        name=SWEEP, defaults={"task": "indexing.sweep_stale_jobs", "interval": every_minute, "enabled": True}
    )
    return {
        "jobs": list(JobThen.objects.order_by("pk").values()),
        "batch": batch.pk,
        "user": user.pk,
        "storage": storage.pk,
        "session": session.pk,
        "photo": photo.pk,
        "content_type": content_type.pk,
        "rerun_job": rerun_job.pk,
    }


def expected_after_the_move(rows, made):
    """The rows of the database before the move with the two changes the move makes: the content type and the sweep."""
    expected = copy.deepcopy(rows)
    (content_type,) = [row for row in expected["django_content_type"] if row["id"] == made["content_type"]]
    content_type["app_label"] = "jobs"
    (sweep,) = [row for row in expected["django_celery_beat_periodictask"] if row["name"] == SWEEP]
    sweep["task"] = "jobs.sweep_stale_jobs"
    return {table: sorted(table_rows, key=repr) for table, table_rows in expected.items()}


def assert_same_rows(actual, expected):
    """Every table and row of expected is in actual, with the same values (a later migration may add columns)."""
    assert expected.keys() <= actual.keys(), f"tables gone: {sorted(expected.keys() - actual.keys())}"
    assert "jobs_job" not in actual, "the jobs app made a table of its own"
    for table, rows in expected.items():
        columns = rows[0].keys() if rows else ()
        kept = sorted(({column: row[column] for column in columns} for row in actual[table]), key=repr)
        assert kept == rows, f"{table} changed"


def test_the_move_keeps_every_job_and_what_it_points_at(migrate):
    made = seed(migrate(before_the_move(), unapply=["jobs"]))
    rows = every_row()
    assert len(rows["indexing_job"]) >= 5
    assert "jobs_job" not in rows

    migrate(leaf_nodes())

    assert_same_rows(every_row(), expected_after_the_move(rows, made))
    assert list(Job.objects.order_by("pk").values()) == made["jobs"]
    batch = Job.objects.get(pk=made["batch"])
    assert sorted(batch.children.values_list("status", flat=True)) == ["failed", "succeeded"]
    assert all(child.parent == batch for child in batch.children.all())
    assert batch.storage == FileStorage.objects.get(pk=made["storage"])
    assert batch.created_by == User.objects.get(pk=made["user"])
    assert batch.params == {"storage_ids": [made["storage"]], "force": True}
    assert (batch.heartbeat_at, batch.worker, batch.is_finished) == (AT, "worker-1:4242", False)
    imported = Job.objects.get(kind="import")
    assert imported.session == ImportSession.objects.get(pk=made["session"]) and imported.cancel_requested
    assert list(imported.session.jobs.all()) == [imported]
    assert Job.objects.get(status="failed").errors[0]["message"] == "Drive not mounted: /media/drive (Ø)"
    photo = Photo.objects.get(pk=made["photo"])
    assert (photo.tags, bytes(photo.hotpreview)) == (["fjord", "Ål"], b"\xff\xd8\xff\xe0 preview")
    assert ImageFile.objects.get(photo=photo).import_session_id == made["session"]

    # The content type is jobs.job now, with its id, its permissions and the admin's history on it.
    content_type = ContentType.objects.get_for_model(Job)
    assert (content_type.pk, content_type.app_label, content_type.model) == (made["content_type"], "jobs", "job")
    assert not ContentType.objects.filter(app_label="indexing", model="job").exists()
    assert Permission.objects.get(pk=made["rerun_job"]).content_type == content_type
    user = User.objects.get(pk=made["user"])
    assert user.has_perm("jobs.rerun_job") and user.has_perm("jobs.view_job")
    assert LogEntry.objects.get(content_type=content_type).get_edited_object() == batch

    assert PeriodicTask.objects.get(name=SWEEP).task == "jobs.sweep_stale_jobs" == sweep_stale_jobs.name

    # New jobs take ids after the old ones (on PostgreSQL the table's sequence carries on).
    new = Job.objects.create(kind="index_generation", parent=batch, storage=batch.storage)
    assert new.pk > max(job["id"] for job in made["jobs"])
    assert Job.objects.get(pk=new.pk).parent == batch
    assert batch.children.count() == 3


def test_it_migrates_back_to_before_the_move_and_forward_again(migrate):
    made = seed(migrate(before_the_move(), unapply=["jobs"]))
    rows = every_row()

    migrate(leaf_nodes())
    migrate(before_the_move(), unapply=["jobs"])

    assert_same_rows(every_row(), rows)
    apps = migrate(before_the_move())
    assert list(apps.get_model("indexing", "Job").objects.order_by("pk").values()) == made["jobs"]

    migrate(leaf_nodes())

    assert_same_rows(every_row(), expected_after_the_move(rows, made))
    assert list(Job.objects.order_by("pk").values()) == made["jobs"]


def test_a_jobs_content_type_made_before_indexing_lets_go_is_merged_into_the_old_one(migrate):
    """`manage.py migrate jobs` first: its post_migrate makes a jobs.job content type while indexing.job still has
    the permissions and the admin history. The plain `migrate` after it keeps them all on the old row's id.
    """
    made = seed(migrate(before_the_move(), unapply=["jobs"]))
    jobs_only = [node for node in leaf_nodes() if node[0] == "jobs"]
    apps = migrate([*before_the_move(), *jobs_only])
    create_contenttypes(global_apps.get_app_config("jobs"), verbosity=0, apps=apps)
    create_permissions(global_apps.get_app_config("jobs"), verbosity=0, apps=apps)
    early = apps.get_model("contenttypes", "ContentType").objects.get(app_label="jobs", model="job")
    granted = apps.get_model("auth", "User").objects.create(username="ola")
    add_job = apps.get_model("auth", "Permission").objects.get(content_type=early, codename="add_job")
    granted.user_permissions.add(add_job)

    migrate(leaf_nodes())

    content_type = ContentType.objects.get_for_model(Job)
    assert content_type.pk == made["content_type"]
    assert list(ContentType.objects.filter(model="job").values_list("app_label", flat=True)) == ["jobs"]
    assert Permission.objects.get(pk=made["rerun_job"]).content_type == content_type
    assert User.objects.get(pk=made["user"]).has_perm("jobs.rerun_job")
    assert User.objects.get(pk=made["user"]).has_perm("jobs.view_job")
    assert User.objects.get(pk=granted.pk).has_perm("jobs.add_job")
    assert LogEntry.objects.get(content_type=content_type).get_edited_object() == Job.objects.get(pk=made["batch"])
