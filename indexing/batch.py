"""Writing many session indexes at once, as one parent job whose children run side by side."""

from imports.models import ImportSession
from jobs.models import Job
from jobs.services import fans_out, job_fan_out


def summarize_batch(children: list[dict]) -> dict:
    """The batch's own part of the parent's result, from its children's rows once they have all ended."""
    return {
        "written": sum((child["result"] or {}).get("written", 0) for child in children),
        "session_ids": [child["session_id"] for child in children],
    }


@fans_out(summarize=summarize_batch)
def run_index_batch_job(job, ctx):
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
    return job_fan_out(job, ctx, children)
