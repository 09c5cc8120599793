"""A storage's role in the copy policy (issue 17): primary, backup or archive; every existing storage is primary.

Added with a plain ALTER TABLE ... ADD COLUMN, as 0002 explains: Django's AddField would rebuild the table on
SQLite and drop the index-revision trigger on it.
"""

from django.db import migrations, models


def add_column(apps, schema_editor):
    schema_editor.execute(
        "ALTER TABLE storages_filestorage ADD COLUMN role varchar(10) NOT NULL DEFAULT 'primary'", params=None
    )


def drop_column(apps, schema_editor):
    schema_editor.execute("ALTER TABLE storages_filestorage DROP COLUMN role", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("storages", "0002_xmp_writeback"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_column, drop_column)],
            state_operations=[
                migrations.AddField(
                    model_name="filestorage",
                    name="role",
                    field=models.CharField(
                        choices=[("primary", "Primary"), ("backup", "Backup"), ("archive", "Archive")],
                        default="primary",
                        max_length=10,
                    ),
                ),
            ],
        ),
    ]
