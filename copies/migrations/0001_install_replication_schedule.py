"""Install the scheduled replication of each primary to its connected backups in django-celery-beat, disabled.

Off by default (issue 17 point 3): enabling the periodic task in the admin is how the user turns it on. Nightly
at 01:30 once enabled; a run that could not start within 12 hours is dropped rather than piled up.
"""

from django.db import migrations

NAME = "ImaLink: replicate each primary to its connected backups"
TASK = "copies.replicate_primaries"


def install_schedule(apps, schema_editor):
    from django.conf import settings

    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="1", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "crontab": crontab,
            "expire_seconds": 12 * 3600,
            "description": "Copy what each connected backup storage lacks from each primary storage (verified). "
            "Off until enabled here.",
            "enabled": False,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(install_schedule, remove_schedule)]
