"""A storage's XMP write-back setting (issue 16): off, the default, or write sidecars.

Added with a plain ALTER TABLE ... ADD COLUMN and a constant default, which SQLite and PostgreSQL take in place:
Django's AddField would rebuild storages_filestorage on SQLite and drop the index-revision trigger on it
(indexing/migrations/0010; imalink/triggers.py).
"""

from django.db import migrations, models


def add_column(apps, schema_editor):
    schema_editor.execute(
        "ALTER TABLE storages_filestorage ADD COLUMN xmp_writeback varchar(10) NOT NULL DEFAULT 'off'", params=None
    )


def drop_column(apps, schema_editor):
    schema_editor.execute("ALTER TABLE storages_filestorage DROP COLUMN xmp_writeback", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("storages", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_column, drop_column)],
            state_operations=[
                migrations.AddField(
                    model_name="filestorage",
                    name="xmp_writeback",
                    field=models.CharField(
                        choices=[("off", "Off"), ("sidecars", "Sidecars")], default="off", max_length=10
                    ),
                ),
            ],
        ),
    ]
