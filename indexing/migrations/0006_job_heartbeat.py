"""Jobs say who runs them and when that process was last alive, so a killed worker's job is failed truthfully.

Also installs the minute-by-minute sweep (indexing.sweep_stale_jobs) in django-celery-beat.
"""

from django.db import migrations, models

SWEEP = "ImaLink: sweep jobs whose worker is gone"


def install_sweep(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=SWEEP,
        defaults={
            "task": "indexing.sweep_stale_jobs",
            "interval": every_minute,
            "crontab": None,
            "expire_seconds": 60,
            "enabled": True,
            "description": "Fail running jobs whose process is gone; send again queued jobs whose broker message was lost.",
        },
    )


def remove_sweep(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SWEEP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("indexing", "0005_job_parent"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="enqueued_at",
            field=models.DateTimeField(
                blank=True, help_text="When its message was last sent to the broker.", null=True
            ),
        ),
        migrations.AddField(model_name="job", name="worker", field=models.CharField(blank=True, max_length=255)),
        migrations.AddField(model_name="job", name="heartbeat_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.RunPython(install_sweep, remove_sweep),
    ]
