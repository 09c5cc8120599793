"""Writing many session indexes at once, as one parent job whose children run side by side."""

from celery import group
from django.conf import settings

from imports.models import ImportSession
from jobs.models import Job
from jobs.services import JobWaitsForChildren
from jobs.tasks import run_job


def run_index_batch_job(job, ctx) -> dict:
    """Write many session indexes at once: one child job per session, sent to the workers as a Celery group.

    Sessions on one storage still take its lock in turn; sessions on different storages run side by side.
    """
    sessions = list(
        ImportSession.objects.filter(pk__in=job.params.get("session_ids", []))
        .select_related("file_storage")
        .order_by("id")
    )
    children = [
        Job.objects.create(
            kind="index_session", storage=s.file_storage, session=s, parent=job, created_by=job.created_by
        )
        for s in sessions
    ]
    ctx.progress(total=len(children), done=0, force=True)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    group(run_job.si(child.pk).set(queue=queue) for child in children).apply_async()
    raise JobWaitsForChildren()
