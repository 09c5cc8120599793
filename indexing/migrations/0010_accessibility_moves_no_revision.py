"""A storage that is unplugged and plugged in again no longer moves its master index's revision.

is_accessible is in index.json, but an index is only ever written, and only ever judged, while its storage is
accessible (index status answers "unavailable" otherwise), so on disk it always says true. Since 0009 a moved
revision answers "stale" without a rebuild, so each unplug and return left a current index reported stale (and
the health check alerting on it) until the next write. This re-creates 0007's trigger on storages_filestorage
without that column; indexing.writer._master_basis leaves it out too.
"""

from django.db import migrations

from imalink.triggers import changed, create_triggers, drop_triggers

REVISIONS = "indexing_indexrevision"
NAME, TABLE = "imalink_rev_filestorage_update", "storages_filestorage"
BEFORE = ["id", "storage_uuid", "directory_name", "base_path", "display_name", "description", "created_at"]
STORAGE_SESSION_COLUMNS = ["id", "storage_uuid", "directory_name"]


def _trigger(vendor, columns):
    sessions_changed = f"CASE WHEN {changed(STORAGE_SESSION_COLUMNS, vendor)} THEN 1 ELSE 0 END"
    rows = (
        "SELECT 'storage:' || OLD.id AS scope, 1 AS step UNION ALL SELECT 'storage:' || NEW.id, 1"
        f" UNION ALL SELECT 'session:' || id, {sessions_changed} FROM imports_importsession WHERE file_storage_id = NEW.id"
    )
    # As in 0007: storage scopes first, each kind in order, so that two writers wait instead of deadlocking.
    bump = (
        f"INSERT INTO {REVISIONS} (scope, revision) SELECT scope, MAX(step) FROM ({rows}) AS changed"
        " WHERE scope IS NOT NULL GROUP BY scope ORDER BY substr(scope, 1, 8) = 'storage:' DESC, scope"
        f" ON CONFLICT (scope) DO UPDATE SET revision = {REVISIONS}.revision + excluded.revision"
    )
    return [(NAME, TABLE, "UPDATE", changed(columns, vendor), [bump])]


def _replace(schema_editor, columns):
    vendor = schema_editor.connection.vendor
    drop_triggers(schema_editor, _trigger(vendor, columns))
    create_triggers(schema_editor, _trigger(vendor, columns))


def without_accessibility(apps, schema_editor):
    _replace(schema_editor, BEFORE)


def with_accessibility(apps, schema_editor):
    _replace(schema_editor, [*BEFORE, "is_accessible"])


class Migration(migrations.Migration):
    dependencies = [
        ("indexing", "0009_indexrecord_current"),
    ]

    operations = [migrations.RunPython(without_accessibility, with_accessibility)]
