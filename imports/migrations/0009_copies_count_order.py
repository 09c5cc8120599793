"""The under-protected list in its order without a sort (issue 17): an index on (copies_count, id) replaces the one
on copies_count alone (imports/counting.py fewest_copies_first). The columns are 0008's, outside Django's state."""

from django.db import migrations


def forwards(apps, schema_editor):
    schema_editor.execute("CREATE INDEX photo_copies_count_id ON imports_photo (copies_count, id)", params=None)
    schema_editor.execute("DROP INDEX photo_copies_count", params=None)


def backwards(apps, schema_editor):
    schema_editor.execute("CREATE INDEX photo_copies_count ON imports_photo (copies_count)", params=None)
    schema_editor.execute("DROP INDEX photo_copies_count_id", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0008_copies_count"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
