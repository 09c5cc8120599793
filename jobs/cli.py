"""Running a job from a management command: in this process, with a tqdm progress bar fed by the job's
own progress reports, so the command and the worker share one code path.
"""

from django.core.management.base import CommandError
from tqdm import tqdm

from .services import job_run


def run_job_with_bar(command, job, *, desc: str, unit: str = "file"):
    """Run `job` here and return it finished; a failed job becomes a CommandError with its reason."""
    quiet = command.verbosity == 0 if hasattr(command, "verbosity") else False
    with tqdm(total=None, unit=unit, desc=desc, disable=quiet) as bar:

        def show(progress):
            total = progress.get("total")
            if total is not None and bar.total != total:
                bar.total = total
            bar.n = progress.get("done") or 0
            counters = {
                k: v
                for k, v in progress.items()
                if k not in ("total", "done", "current", "stage") and isinstance(v, int)
            }
            bar.set_postfix(counters, refresh=False)
            bar.refresh()

        finished = job_run(job.pk, on_progress=show)
    if finished is None:
        raise CommandError(f"Job {job.pk} could not be claimed.")
    if finished.status != "succeeded":
        message = (finished.errors or [{}])[-1].get("error", finished.status)
        raise CommandError(f"{desc} {finished.status}: {message}")
    return finished
