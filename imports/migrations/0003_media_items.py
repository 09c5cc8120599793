"""Videos beside photos, and companions beside originals (issue 16).

Photo gains media_type, duration_s and codec; ImageFile gains role. Each column is added with a plain
ALTER TABLE ... ADD COLUMN carrying a constant default, which SQLite and PostgreSQL both take in place: Django's
own AddField rebuilds the whole table on SQLite for a NOT NULL column, which copies every row of a large archive
and drops the running-total and index-revision triggers on it (imalink/triggers.py). Every existing row is a
photo and every existing file an original, which is what the defaults say.
"""

from django.db import migrations, models

ROLES = [
    ("original", "Original"),
    ("sidecar", "Sidecar"),
    ("edit", "Edit"),
    ("thumbnail", "Thumbnail"),
    ("proxy", "Proxy"),
    ("motion", "Motion"),
]

COLUMNS = [
    ("imports_imagefile", "role", "varchar(10) NOT NULL DEFAULT 'original'"),
    ("imports_photo", "media_type", "varchar(8) NOT NULL DEFAULT 'photo'"),
    ("imports_photo", "duration_s", "double precision NULL"),
    ("imports_photo", "codec", "varchar(40) NOT NULL DEFAULT ''"),
]


def _column_sql(table, column, definition, vendor):
    if vendor == "sqlite":
        definition = definition.replace("double precision", "real")
    return f"ALTER TABLE {table} ADD COLUMN {column} {definition}"


def add_columns(apps, schema_editor):
    for table, column, definition in COLUMNS:
        schema_editor.execute(_column_sql(table, column, definition, schema_editor.connection.vendor), params=None)


def drop_columns(apps, schema_editor):
    # SQLite 3.35+ drops a column in place, as PostgreSQL does.
    for table, column, _definition in reversed(COLUMNS):
        schema_editor.execute(f"ALTER TABLE {table} DROP COLUMN {column}", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0002_file_totals"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_columns, drop_columns)],
            state_operations=[
                migrations.AddField(
                    model_name="imagefile",
                    name="role",
                    field=models.CharField(choices=ROLES, default="original", max_length=10),
                ),
                migrations.AddField(
                    model_name="photo",
                    name="codec",
                    field=models.CharField(blank=True, help_text="A video's codec, as FFmpeg names it.", max_length=40),
                ),
                migrations.AddField(
                    model_name="photo",
                    name="duration_s",
                    field=models.FloatField(blank=True, help_text="A video's length in seconds.", null=True),
                ),
                migrations.AddField(
                    model_name="photo",
                    name="media_type",
                    field=models.CharField(
                        choices=[("photo", "Photo"), ("video", "Video")], default="photo", max_length=8
                    ),
                ),
            ],
        ),
    ]
