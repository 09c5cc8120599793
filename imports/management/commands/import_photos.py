"""Import a folder into an import session from the command line, with a progress bar.

It runs the very job a POST /import-sessions/{id}/import runs, in this process, so the job shows on the
dashboard too and the bar comes from the job's own progress reports.
"""

from django.core.management.base import BaseCommand, CommandError

from imalink.errors import ImalinkError
from imports.pipeline import import_validate
from imports.services import session_get
from jobs.cli import run_job_with_bar
from jobs.services import job_start


class Command(BaseCommand):
    help = "Import every photo under SOURCE_PATH into import session SESSION_ID."

    def add_arguments(self, parser):
        parser.add_argument("session_id", type=int)
        parser.add_argument("source_path")
        parser.add_argument("--target-subdirectory", default="", help="Folder under photos/, e.g. 2024/italy.")
        parser.add_argument("--no-recursive", action="store_true", help="Only the files directly in SOURCE_PATH.")

    def handle(self, *args, session_id, source_path, target_subdirectory, no_recursive, **options):
        try:
            session = session_get(session_id)
            import_validate(session, source_path, target_subdirectory)
        except ImalinkError as exc:
            raise CommandError(exc.message) from None
        params = {"source_path": source_path, "target_subdirectory": target_subdirectory, "recursive": not no_recursive}
        # The job row is kept for the record (it shows on the dashboard); it runs here, never on a worker.
        job = job_start(kind="import", storage=session.file_storage, session=session, params=params, enqueue=False)
        self.verbosity = options.get("verbosity", 1)
        try:
            finished = run_job_with_bar(self, job, desc=f"Import #{session.pk}")
        finally:
            job.refresh_from_db()
            for failure in (job.result or {}).get("failures", []):
                self.stderr.write(f"failed: {failure['path']}: {failure['reason']}")
        result = finished.result
        self.stdout.write(
            f"Imported {result['imported']}, duplicates {result['duplicates']}, failed {result['failed']} "
            f"of {result['total']} files in {result['duration_s']}s (job {finished.pk})."
        )
