"""The minute-by-minute sweep is now the jobs app's task: point its django-celery-beat entry at the new name."""

from django.db import migrations

OLD, NEW = "indexing.sweep_stale_jobs", "jobs.sweep_stale_jobs"


def rename(apps, schema_editor, *, old=OLD, new=NEW):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=old).update(task=new)


def rename_back(apps, schema_editor):
    rename(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("indexing", "0006_job_heartbeat"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(rename, rename_back)]
