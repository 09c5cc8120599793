"""Job now belongs to the jobs app (jobs/migrations/0001): indexing lets go of it without touching its table.

Its content type is renamed to jobs.job, so the admin's history and any permission given on jobs stay attached.
"""

from django.db import migrations


def _model(apps, app_label, name):
    try:
        return apps.get_model(app_label, name)
    except LookupError:  # that app is not installed
        return None


def _merge(apps, made, *, into):
    """Move the permissions, their grants and the admin history of content type made onto into, then delete made."""
    Permission = _model(apps, "auth", "Permission")
    if Permission is not None:
        for permission in Permission.objects.filter(content_type=made):
            twin = Permission.objects.filter(content_type=into, codename=permission.codename).first()
            if twin is None:
                permission.content_type = into
                permission.save(update_fields=["content_type"])
            else:
                twin.user_set.add(*permission.user_set.all())
                twin.group_set.add(*permission.group_set.all())
                permission.delete()
    LogEntry = _model(apps, "admin", "LogEntry")
    if LogEntry is not None:
        LogEntry.objects.filter(content_type=made).update(content_type=into)
    made.delete()


def move_content_type(apps, schema_editor, *, old="indexing", new="jobs"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    kept = ContentType.objects.filter(app_label=old, model="job").first()
    if kept is None:
        return  # a new database: post_migrate makes the content type
    # `migrate jobs` before this made one already (its post_migrate): the old row, with its id, wins.
    made = ContentType.objects.filter(app_label=new, model="job").first()
    if made is not None:
        _merge(apps, made, into=kept)
    kept.app_label = new
    kept.save(update_fields=["app_label"])


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
