"""Write every session index and the master index of one storage, with a progress bar."""

from django.core.management.base import BaseCommand, CommandError

from imalink.errors import ImalinkError
from jobs.cli import run_job_with_bar
from jobs.services import job_start
from storages.services import storage_get, storage_require_available


class Command(BaseCommand):
    help = "Regenerate the JSON indexes of storage UUID (index.json and imports/session_<id>.json)."

    def add_arguments(self, parser):
        parser.add_argument("uuid")

    def handle(self, *args, uuid, **options):
        self.verbosity = options.get("verbosity", 1)
        try:
            storage = storage_get(uuid)
            storage_require_available(storage, writable=True)
        except ImalinkError as exc:
            raise CommandError(exc.message) from None
        job = job_start(kind="index_storage", storage=storage, enqueue=False)
        result = run_job_with_bar(self, job, desc=f"Indexes of {storage.display_name}", unit="index").result
        self.stdout.write(
            f"Wrote {result['written']} of {len(result['index_files'])} index files (the others were already current)."
        )
