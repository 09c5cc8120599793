"""Job now belongs to the jobs app (jobs/migrations/0001): indexing lets go of it without touching its table.

Its content type is renamed to jobs.job, so the admin's history and any permission given on jobs stay attached.
"""

from django.db import migrations


def move_content_type(apps, schema_editor, *, old="indexing", new="jobs"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=new, model="job").exists():
        ContentType.objects.filter(app_label=old, model="job").update(app_label=new)


def move_content_type_back(apps, schema_editor):
    move_content_type(apps, schema_editor, old="jobs", new="indexing")


class Migration(migrations.Migration):
    dependencies = [
        ("indexing", "0007_index_revisions"),
        ("jobs", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Job")]),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
