"""Validate one storage's files against the database, with a progress bar; exits non-zero on any problem,
so a cron job can alert on it."""

from django.core.management.base import BaseCommand, CommandError

from imalink.errors import ImalinkError
from jobs.cli import run_job_with_bar
from jobs.services import job_start
from storages.services import storage_get, storage_require_available


class Command(BaseCommand):
    help = "Check storage UUID's files: size and mtime (quick, the default) or every byte (--full)."

    def add_arguments(self, parser):
        parser.add_argument("uuid")
        parser.add_argument("--full", action="store_true", help="Re-hash every file: finds bit rot, reads every byte.")

    def handle(self, *args, uuid, full, **options):
        self.verbosity = options.get("verbosity", 1)
        mode = "full" if full else "quick"
        try:
            storage = storage_get(uuid)
            storage_require_available(storage)
        except ImalinkError as exc:
            raise CommandError(exc.message) from None
        job = job_start(kind="validate", storage=storage, params={"mode": mode}, enqueue=False)
        r = run_job_with_bar(self, job, desc=f"{mode.title()} validation of {storage.display_name}").result
        for entry in r["missing_files"]:
            self.stdout.write(f"missing: {entry['path']}")
        for entry in r["corrupted_files"]:
            detail = f"expected {entry['expected']}, found {entry['actual']}" if entry["actual"] else entry["reason"]
            self.stdout.write(f"corrupted: {entry['path']} ({detail}; file id {entry['file_id']})")
        for entry in r["extra_files"]:
            self.stdout.write(f"extra: {entry['path']} ({entry['file_size']:,} bytes)")
        self.stdout.write(
            f"{mode} validation: {r['validated_files']} validated, {len(r['missing_files'])} missing, "
            f"{len(r['corrupted_files'])} corrupted, {len(r['extra_files'])} extra of {r['files_checked']} checked; "
            f"{r['bytes_read']:,} bytes read in {r['duration_s']}s"
        )
        if r["missing_files"] or r["corrupted_files"]:
            raise CommandError(
                f"{len(r['missing_files'])} missing and {len(r['corrupted_files'])} corrupted files "
                f"in {storage.display_name!r}"
                " (once a corrupted file is known good, accept it: POST /api/v1/storage-index/accept-checksum)"
            )
