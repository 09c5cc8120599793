"""Running totals of files, bytes and photos per storage and session, kept by database triggers.

Statistics and the master index used to aggregate every file row of a storage (60-100 ms at 100,000 files, and
seconds on a busy machine) on every call after any change. The triggers below keep the totals in the same
transaction as each insert, delete or update of an ImageFile row, by save(), a bulk or bare UPDATE, or a SQL shell
alike, so those reads touch a handful of rows. They are written for SQLite and PostgreSQL.

- imports_filetotals: per (storage, session), files on disk (present or modified), their bytes, missing files.
- imports_storagephoto: per (storage, photo), how many files; the row exists while there is at least one.
- imports_storagetotals: per storage, how many storagephoto rows (distinct photos) there are.

A removal only ever updates rows that exist: a DELETE FROM every table in any order (SQLite's flush) leaves nothing
behind. On SQLite, a later migration that rebuilds imports_imagefile or imports_storagephoto drops their triggers
and must create them again (tests/imports/test_totals.py test_the_triggers_are_installed fails until it does).
"""

import django.db.models.deletion
from django.db import migrations, models

from imalink.triggers import changed as _changed
from imalink.triggers import create_triggers
from imalink.triggers import drop_triggers as _drop

FILES, PAIRS, PHOTOS = "imports_filetotals", "imports_storagephoto", "imports_storagetotals"
# What a file row adds to its bucket: (present_files, present_bytes, missing_files).
ON_DISK = "CASE WHEN {r}.status = 'missing' THEN 0 ELSE 1 END"
BYTES = "CASE WHEN {r}.status = 'missing' THEN 0 ELSE {r}.file_size END"
MISSING = "CASE WHEN {r}.status = 'missing' THEN 1 ELSE 0 END"
BUCKET_COLUMNS = ["file_storage_id", "import_session_id", "status", "file_size"]
PAIR_COLUMNS = ["file_storage_id", "photo_id"]


def _add_to_bucket(r):
    on_disk, size, missing = (part.format(r=r) for part in (ON_DISK, BYTES, MISSING))
    return (
        f"INSERT INTO {FILES} (file_storage_id, import_session_id, present_files, present_bytes, missing_files)"
        f" VALUES ({r}.file_storage_id, {r}.import_session_id, {on_disk}, {size}, {missing})"
        f" ON CONFLICT (file_storage_id, import_session_id) DO UPDATE SET present_files = {FILES}.present_files + excluded.present_files,"
        f" present_bytes = {FILES}.present_bytes + excluded.present_bytes, missing_files = {FILES}.missing_files + excluded.missing_files"
    )


def _take_from_bucket(r):
    on_disk, size, missing = (part.format(r=r) for part in (ON_DISK, BYTES, MISSING))
    return (
        f"UPDATE {FILES} SET present_files = present_files - {on_disk}, present_bytes = present_bytes - {size},"
        f" missing_files = missing_files - {missing} WHERE file_storage_id = {r}.file_storage_id AND import_session_id = {r}.import_session_id"
    )


def _add_to_pair(r):
    return (
        f"INSERT INTO {PAIRS} (file_storage_id, photo_id, files) VALUES ({r}.file_storage_id, {r}.photo_id, 1)"
        f" ON CONFLICT (file_storage_id, photo_id) DO UPDATE SET files = {PAIRS}.files + 1"
    )


def _take_from_pair(r):
    where = f"file_storage_id = {r}.file_storage_id AND photo_id = {r}.photo_id"
    return [f"UPDATE {PAIRS} SET files = files - 1 WHERE {where}", f"DELETE FROM {PAIRS} WHERE {where} AND files <= 0"]


def _triggers(vendor):
    """(name, table, event, when, statements)."""
    return [
        (
            "imalink_tot_imagefile_insert",
            "imports_imagefile",
            "INSERT",
            None,
            [_add_to_bucket("NEW"), _add_to_pair("NEW")],
        ),
        (
            "imalink_tot_imagefile_delete",
            "imports_imagefile",
            "DELETE",
            None,
            [_take_from_bucket("OLD"), *_take_from_pair("OLD")],
        ),
        (
            "imalink_tot_imagefile_bucket",
            "imports_imagefile",
            "UPDATE",
            _changed(BUCKET_COLUMNS, vendor),
            [_take_from_bucket("OLD"), _add_to_bucket("NEW")],
        ),
        (
            "imalink_tot_imagefile_pair",
            "imports_imagefile",
            "UPDATE",
            _changed(PAIR_COLUMNS, vendor),
            [*_take_from_pair("OLD"), _add_to_pair("NEW")],
        ),
        (
            "imalink_tot_storagephoto_insert",
            PAIRS,
            "INSERT",
            None,
            [
                f"INSERT INTO {PHOTOS} (file_storage_id, photos) VALUES (NEW.file_storage_id, 1)"
                f" ON CONFLICT (file_storage_id) DO UPDATE SET photos = {PHOTOS}.photos + 1"
            ],
        ),
        (
            "imalink_tot_storagephoto_delete",
            PAIRS,
            "DELETE",
            None,
            [f"UPDATE {PHOTOS} SET photos = photos - 1 WHERE file_storage_id = OLD.file_storage_id"],
        ),
    ]


def install_triggers(apps, schema_editor):
    create_triggers(schema_editor, _triggers(schema_editor.connection.vendor))
    # The rows already there; the storagephoto trigger counts the photos as their pairs are inserted.
    schema_editor.execute(
        f"INSERT INTO {FILES} (file_storage_id, import_session_id, present_files, present_bytes, missing_files)"
        f" SELECT f.file_storage_id, f.import_session_id, SUM({ON_DISK.format(r='f')}), SUM({BYTES.format(r='f')}), SUM({MISSING.format(r='f')})"
        " FROM imports_imagefile f GROUP BY f.file_storage_id, f.import_session_id",
        params=None,
    )
    schema_editor.execute(
        f"INSERT INTO {PAIRS} (file_storage_id, photo_id, files) SELECT file_storage_id, photo_id, COUNT(*)"
        " FROM imports_imagefile GROUP BY file_storage_id, photo_id",
        params=None,
    )


def drop_triggers(apps, schema_editor):
    _drop(schema_editor, _triggers(schema_editor.connection.vendor))


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0001_initial"),
        ("storages", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="StorageTotals",
            fields=[
                (
                    "file_storage",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="storages.filestorage",
                    ),
                ),
                ("photos", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="FileTotals",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("present_files", models.BigIntegerField(default=0)),
                ("present_bytes", models.BigIntegerField(default=0)),
                ("missing_files", models.BigIntegerField(default=0)),
                (
                    "file_storage",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="storages.filestorage"
                    ),
                ),
                (
                    "import_session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="imports.importsession"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("file_storage", "import_session"), name="filetotals_unique_bucket")
                ],
            },
        ),
        migrations.CreateModel(
            name="StoragePhoto",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("files", models.BigIntegerField(default=0)),
                (
                    "file_storage",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="storages.filestorage"
                    ),
                ),
                (
                    "photo",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="imports.photo"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("file_storage", "photo"), name="storagephoto_unique_pair")
                ],
            },
        ),
        migrations.RunPython(install_triggers, drop_triggers),
    ]
