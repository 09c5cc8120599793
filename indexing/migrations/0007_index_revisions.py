"""Index revisions kept by database triggers, and records of what was written, so index status need not rebuild.

The triggers bump "session:<id>" and "storage:<id>" in indexing_indexrevision whenever a row that the session
index or the master index is built from changes (see writer.build_session_index and build_master_index), by
save(), a bare UPDATE, a bulk insert or a SQL shell alike. They are written for SQLite and PostgreSQL.

On SQLite, Django alters a table by building a new one and dropping the old, which drops its triggers: a later
migration that alters one of these five tables must create them again (tests/indexing/test_index_revisions.py
test_the_triggers_are_installed fails until it does).
"""

import django.db.models.deletion
from django.db import migrations, models

from imalink.triggers import changed as _changed
from imalink.triggers import create_triggers
from imalink.triggers import drop_triggers as _drop

REVISIONS = "indexing_indexrevision"

# What each index reads, column by column; a change to any other column (last_seen_at, hotpreview, updated_at,
# free_bytes, last_index_at, ...) touches no index and bumps nothing.
FILE_COLUMNS = [
    "id",
    "photo_id",
    "import_session_id",
    "file_storage_id",
    "relative_path",
    "original_filename",
    "file_format",
    "file_size",
    "mtime_ns",
    "checksum",
    "is_primary",
    "status",
    "created_at",
]
FILE_MASTER_COLUMNS = ["import_session_id", "file_storage_id", "file_size", "status"]
PHOTO_COLUMNS = [
    "hothash",
    "hothash_version",
    "width",
    "height",
    "taken_at",
    "gps_latitude",
    "gps_longitude",
    "camera_make",
    "camera_model",
    "has_hotpreview",
    "title",
    "description",
    "rating",
    "tags",
    "author_id",
]
AUTHOR_COLUMNS = ["id", "name", "email"]
SESSION_COLUMNS = [
    "id",
    "title",
    "description",
    "imported_at",
    "file_storage_id",
    "default_author_id",
    "source_path",
    "target_subdirectory",
]
SESSION_MASTER_COLUMNS = ["id", "title", "imported_at", "file_storage_id"]
# last_scan_at is in the master index but not compared (writer.VOLATILE_KEYS).
STORAGE_COLUMNS = [
    "id",
    "storage_uuid",
    "directory_name",
    "base_path",
    "display_name",
    "description",
    "created_at",
    "is_accessible",
]
STORAGE_SESSION_COLUMNS = ["id", "storage_uuid", "directory_name"]


def _triggers(vendor):
    """(name, table, event, when, rows): rows is a SELECT of (scope, step), its first part naming the columns (SQLite
    takes no column list on a derived table); a step of 0 only locks the row.
    """
    changed = lambda columns: _changed(columns, vendor)  # noqa: E731
    master_changed = f"CASE WHEN {changed(FILE_MASTER_COLUMNS)} THEN 1 ELSE 0 END"
    session_master_changed = f"CASE WHEN {changed(SESSION_MASTER_COLUMNS)} THEN 1 ELSE 0 END"
    sessions_changed = f"CASE WHEN {changed(STORAGE_SESSION_COLUMNS)} THEN 1 ELSE 0 END"
    author_files = "imports_imagefile f JOIN imports_photo p ON p.id = f.photo_id WHERE p.author_id = NEW.id"
    return [
        (
            "imalink_rev_imagefile_insert",
            "imports_imagefile",
            "INSERT",
            None,
            "SELECT 'storage:' || NEW.file_storage_id AS scope, 1 AS step UNION ALL SELECT 'session:' || NEW.import_session_id, 1",
        ),
        (
            "imalink_rev_imagefile_delete",
            "imports_imagefile",
            "DELETE",
            None,
            "SELECT 'storage:' || OLD.file_storage_id AS scope, 1 AS step UNION ALL SELECT 'session:' || OLD.import_session_id, 1",
        ),
        (
            "imalink_rev_imagefile_update",
            "imports_imagefile",
            "UPDATE",
            changed(FILE_COLUMNS),
            f"SELECT 'storage:' || OLD.file_storage_id AS scope, {master_changed} AS step UNION ALL SELECT 'storage:' || NEW.file_storage_id, {master_changed}"
            " UNION ALL SELECT 'session:' || OLD.import_session_id, 1 UNION ALL SELECT 'session:' || NEW.import_session_id, 1",
        ),
        (
            "imalink_rev_photo_update",
            "imports_photo",
            "UPDATE",
            changed(PHOTO_COLUMNS),
            "SELECT 'session:' || import_session_id AS scope, 1 AS step FROM imports_imagefile WHERE photo_id = NEW.id"
            " UNION ALL SELECT 'storage:' || file_storage_id, 0 FROM imports_imagefile WHERE photo_id = NEW.id",
        ),
        (
            "imalink_rev_author_update",
            "imports_author",
            "UPDATE",
            changed(AUTHOR_COLUMNS),
            "SELECT 'session:' || id AS scope, 1 AS step FROM imports_importsession WHERE default_author_id = NEW.id"
            " UNION ALL SELECT 'storage:' || file_storage_id, 0 FROM imports_importsession WHERE default_author_id = NEW.id"
            f" UNION ALL SELECT 'session:' || f.import_session_id, 1 FROM {author_files}"
            f" UNION ALL SELECT 'storage:' || f.file_storage_id, 0 FROM {author_files}",
        ),
        (
            "imalink_rev_importsession_insert",
            "imports_importsession",
            "INSERT",
            None,
            "SELECT 'storage:' || NEW.file_storage_id AS scope, 1 AS step UNION ALL SELECT 'session:' || NEW.id, 1",
        ),
        (
            "imalink_rev_importsession_delete",
            "imports_importsession",
            "DELETE",
            None,
            "SELECT 'storage:' || OLD.file_storage_id AS scope, 1 AS step UNION ALL SELECT 'session:' || OLD.id, 1",
        ),
        (
            "imalink_rev_importsession_update",
            "imports_importsession",
            "UPDATE",
            changed(SESSION_COLUMNS),
            f"SELECT 'storage:' || OLD.file_storage_id AS scope, {session_master_changed} AS step UNION ALL SELECT 'storage:' || NEW.file_storage_id, {session_master_changed}"
            " UNION ALL SELECT 'session:' || OLD.id, 1 UNION ALL SELECT 'session:' || NEW.id, 1",
        ),
        (
            "imalink_rev_filestorage_update",
            "storages_filestorage",
            "UPDATE",
            changed(STORAGE_COLUMNS),
            "SELECT 'storage:' || OLD.id AS scope, 1 AS step UNION ALL SELECT 'storage:' || NEW.id, 1"
            f" UNION ALL SELECT 'session:' || id, {sessions_changed} FROM imports_importsession WHERE file_storage_id = NEW.id",
        ),
    ]


def _bump(rows):
    # Storage scopes are locked before session scopes, and each kind in order, so that two transactions bumping
    # the same rows (an import and a scan on PostgreSQL) wait for each other instead of deadlocking. The outer
    # WHERE also settles SQLite's parse of INSERT ... SELECT ... ON CONFLICT.
    return (
        f"INSERT INTO {REVISIONS} (scope, revision) SELECT scope, MAX(step) FROM ({rows}) AS changed"
        " WHERE scope IS NOT NULL GROUP BY scope ORDER BY substr(scope, 1, 8) = 'storage:' DESC, scope"
        f" ON CONFLICT (scope) DO UPDATE SET revision = {REVISIONS}.revision + excluded.revision"
    )


def _statements(vendor):
    return [(name, table, event, when, [_bump(rows)]) for name, table, event, when, rows in _triggers(vendor)]


def install_triggers(apps, schema_editor):
    create_triggers(schema_editor, _statements(schema_editor.connection.vendor))


def drop_triggers(apps, schema_editor):
    _drop(schema_editor, _statements(schema_editor.connection.vendor))


class Migration(migrations.Migration):
    dependencies = [
        ("indexing", "0006_job_heartbeat"),
        ("storages", "0001_initial"),
        ("imports", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="IndexRevision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("scope", models.CharField(max_length=40, unique=True)),
                ("revision", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="IndexRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("relative_path", models.CharField(max_length=255)),
                ("revision", models.BigIntegerField()),
                ("basis", models.CharField(max_length=64)),
                ("st_ino", models.BigIntegerField()),
                ("st_size", models.BigIntegerField()),
                ("st_mtime_ns", models.BigIntegerField()),
                ("generated_at", models.CharField(blank=True, max_length=64, null=True)),
                (
                    "storage",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="index_records",
                        to="storages.filestorage",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("storage", "relative_path"), name="indexrecord_unique_path")
                ],
            },
        ),
        migrations.RunPython(install_triggers, drop_triggers),
    ]
