"""Job moves here from the indexing app, keeping its table (indexing_job) and every row in it.

Only Django's idea of which app owns the model changes (SeparateDatabaseAndState): the database is not touched,
so job history, the parent links of batch jobs and the foreign keys to storages, sessions and users stay as they
were. indexing/migrations/0008 removes the model from indexing's side and renames its content type.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("indexing", "0007_index_revisions"),
        ("imports", "0002_file_totals"),
        ("storages", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Job",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("kind", models.CharField(max_length=40)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                    ("cancelled", "Cancelled"),
                                ],
                                db_index=True,
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("params", models.JSONField(blank=True, default=dict)),
                        ("progress", models.JSONField(blank=True, default=dict)),
                        ("result", models.JSONField(blank=True, null=True)),
                        ("errors", models.JSONField(blank=True, default=list)),
                        ("cancel_requested", models.BooleanField(default=False)),
                        ("celery_task_id", models.CharField(blank=True, max_length=64)),
                        (
                            "enqueued_at",
                            models.DateTimeField(
                                blank=True, help_text="When its message was last sent to the broker.", null=True
                            ),
                        ),
                        ("worker", models.CharField(blank=True, max_length=255)),
                        ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "parent",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="children",
                                to="jobs.job",
                            ),
                        ),
                        (
                            "session",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="jobs",
                                to="imports.importsession",
                            ),
                        ),
                        (
                            "storage",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="jobs",
                                to="storages.filestorage",
                            ),
                        ),
                    ],
                    options={"db_table": "indexing_job", "ordering": ["-created_at", "-id"]},
                ),
            ],
            database_operations=[],
        ),
    ]
