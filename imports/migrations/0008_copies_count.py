"""Each photo's copies across storages (issue 17), kept by database triggers in the same transaction as every change
to an ImageFile row, as migration 0002 keeps the file totals.

A photo's copies are the distinct storages holding a `present` file with its reference checksum: the checksum of
its primary original (else its first original on record), imports/counting.py. Two columns of imports_photo hold
the count and, while it is exactly one, the storage that holds that only copy (and likewise for verified copies):

- copies_count: how many storages hold a copy (0 when every copy is missing or modified);
- copies_sole_storage_id: the storage of the only copy when copies_count = 1, else NULL (indexed: a storage's
  `photos_only_here` and the retire-check read it by index, never a storage's every file);
- copies_verified_sole_storage_id: the storage of the only verified copy (verified_at set) when exactly one storage
  holds one, else NULL (the retire-check's "only verified copy").

The columns are added with plain ALTER TABLE (a default, so the ORM's inserts that leave them out get 0 and NULL)
and are not in Django's model state: imports/models.py does not name them, and imports/counting.py reads them with
RawSQL. Each trigger recomputes the photo's two columns from that photo's own file rows (a few rows, by the
photo_id index), so no order between triggers matters. On SQLite a later migration that rebuilds imports_photo
from Django's state would drop these columns: it must add them (and these triggers) again;
tests/copies/test_copies.py test_the_copy_triggers_are_installed fails until it does.
"""

from django.db import migrations

from imalink.triggers import changed, create_triggers, drop_triggers

PHOTO = "imports_photo"
# The photo's reference checksum, and its present files with it: correlated on the photo row being updated.
REFERENCE = (
    "(SELECT r.checksum FROM imports_imagefile r WHERE r.photo_id = imports_photo.id AND r.role = 'original'"
    " ORDER BY r.is_primary DESC, r.id LIMIT 1)"
)
HOLDERS = f"FROM imports_imagefile c WHERE c.photo_id = imports_photo.id AND c.status = 'present' AND c.checksum = {REFERENCE}"
SOLE = "SELECT CASE WHEN COUNT(DISTINCT c.file_storage_id) = 1 THEN MIN(c.file_storage_id) END"
RECOUNT = (
    f"UPDATE {PHOTO} SET copies_count = (SELECT COUNT(DISTINCT c.file_storage_id) {HOLDERS}),"
    f" copies_sole_storage_id = ({SOLE} {HOLDERS}),"
    f" copies_verified_sole_storage_id = ({SOLE} {HOLDERS} AND c.verified_at IS NOT NULL)"
)
WATCHED = ["photo_id", "file_storage_id", "status", "checksum", "is_primary", "role"]
# A new verification time changes nothing; a file becoming verified, or no longer, does.
VERIFIED_CHANGED = "((OLD.verified_at IS NULL) <> (NEW.verified_at IS NULL))"
COLUMNS = [
    ("copies_count", "integer NOT NULL DEFAULT 0"),
    ("copies_sole_storage_id", "integer NULL"),
    ("copies_verified_sole_storage_id", "integer NULL"),
]
INDEXES = [
    ("photo_copies_count", "copies_count"),
    ("photo_copies_sole_storage", "copies_sole_storage_id"),
    # With the count, so "only verified copy here, and more than one copy" is read from the index alone.
    ("photo_copies_verified_sole", "copies_verified_sole_storage_id, copies_count"),
]


def _triggers(vendor):
    """(name, table, event, when, statements): imalink/triggers.py writes them for SQLite and PostgreSQL."""
    return [
        (
            "imalink_copies_imagefile_insert",
            "imports_imagefile",
            "INSERT",
            None,
            [f"{RECOUNT} WHERE id = NEW.photo_id"],
        ),
        (
            "imalink_copies_imagefile_delete",
            "imports_imagefile",
            "DELETE",
            None,
            [f"{RECOUNT} WHERE id = OLD.photo_id"],
        ),
        (
            "imalink_copies_imagefile_update",
            "imports_imagefile",
            "UPDATE",
            f"({changed(WATCHED, vendor)} OR {VERIFIED_CHANGED})",
            [f"{RECOUNT} WHERE id IN (OLD.photo_id, NEW.photo_id)"],
        ),
    ]


def install(apps, schema_editor):
    for column, definition in COLUMNS:
        schema_editor.execute(f"ALTER TABLE {PHOTO} ADD COLUMN {column} {definition}", params=None)
    for name, column in INDEXES:
        schema_editor.execute(f"CREATE INDEX {name} ON {PHOTO} ({column})", params=None)
    create_triggers(schema_editor, _triggers(schema_editor.connection.vendor))
    schema_editor.execute(RECOUNT, params=None)  # the photos already there


def uninstall(apps, schema_editor):
    drop_triggers(schema_editor, _triggers(schema_editor.connection.vendor))
    for name, _column in INDEXES:
        schema_editor.execute(f"DROP INDEX {name}", params=None)
    for column, _definition in reversed(COLUMNS):
        schema_editor.execute(f"ALTER TABLE {PHOTO} DROP COLUMN {column}", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0007_copies"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
