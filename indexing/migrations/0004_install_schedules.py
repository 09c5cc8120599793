"""Install ImaLink's maintenance schedules in django-celery-beat (editable in the admin afterwards).

Every schedule carries expire_seconds: a run that could not start in time (the worker was down) is
dropped instead of piling up behind the next one.
"""

from django.db import migrations

SCHEDULES = [
    # name, task, crontab (minute, hour, day_of_week), expire_seconds, description
    (
        "ImaLink: daily health check",
        "indexing.daily_health_check",
        ("15", "6", "*"),
        12 * 3600,
        "Accessibility, free space, files and indexes of every storage; stored as a HealthReport, alerts on change.",
    ),
    (
        "ImaLink: weekly index regeneration and scan",
        "indexing.weekly_maintenance",
        ("30", "3", "0"),
        24 * 3600,
        "Regenerate every index, then scan every available storage (the seed's weekly script).",
    ),
    (
        "ImaLink: monthly full validation, in nightly slices",
        "indexing.nightly_validation_slice",
        ("0", "2", "*"),
        12 * 3600,
        "Re-hash every file once a month, a time-budgeted slice per night, resuming where the last slice stopped.",
    ),
]


def install_schedules(apps, schema_editor):
    from django.conf import settings

    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, (minute, hour, day_of_week), expire_seconds, description in SCHEDULES:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_week=day_of_week,
            day_of_month="*",
            month_of_year="*",
            timezone=settings.TIME_ZONE,
        )
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": task,
                "crontab": crontab,
                "expire_seconds": expire_seconds,
                "description": description,
                "enabled": True,
            },
        )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("indexing", "0003_validationcheckpoint"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install_schedules, remove_schedules)]
