"""Copies across storages (issue 17): a session that mirrors another, a file's last verification, and an index
that finds every storage holding a checksum.

The columns are added with plain ALTER TABLE ... ADD COLUMN (nullable, no default), which SQLite and PostgreSQL
take in place; Django's AddField would rebuild the tables on SQLite and drop their triggers (imalink/triggers.py).
"""

from django.db import migrations, models

COLUMNS = [
    (
        "imports_importsession",
        "mirror_of_id",
        "integer NULL REFERENCES imports_importsession (id) DEFERRABLE INITIALLY DEFERRED",
    ),
    ("imports_imagefile", "verified_at", "timestamp with time zone NULL"),
]


def add_columns(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, column, definition in COLUMNS:
        if vendor == "sqlite":
            definition = definition.replace("timestamp with time zone", "datetime")
        schema_editor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}", params=None)
    schema_editor.execute(
        "CREATE INDEX imports_importsession_mirror_of_id ON imports_importsession (mirror_of_id)", params=None
    )


def drop_columns(apps, schema_editor):
    schema_editor.execute("DROP INDEX imports_importsession_mirror_of_id", params=None)
    for table, column, _definition in reversed(COLUMNS):
        schema_editor.execute(f"ALTER TABLE {table} DROP COLUMN {column}", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0006_photo_videos_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_columns, drop_columns)],
            state_operations=[
                migrations.AddField(
                    model_name="importsession",
                    name="mirror_of",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=models.deletion.SET_NULL,
                        related_name="mirrors",
                        to="imports.importsession",
                    ),
                ),
                migrations.AddField(
                    model_name="imagefile",
                    name="verified_at",
                    field=models.DateTimeField(blank=True, null=True),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="imagefile",
            index=models.Index(fields=["checksum", "file_storage"], name="imagefile_checksum_storage"),
        ),
    ]
