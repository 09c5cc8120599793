"""Scan one storage for moved, missing, modified and new files, with a progress bar."""

from django.core.management.base import BaseCommand, CommandError

from imalink.errors import ImalinkError
from jobs.cli import run_job_with_bar
from jobs.services import job_start
from storages.services import storage_get, storage_require_available


class Command(BaseCommand):
    help = "Scan storage UUID and bring the database and its indexes up to date with photos/."

    def add_arguments(self, parser):
        parser.add_argument("uuid")
        parser.add_argument("--dry-run", action="store_true", help="Report what changed without writing anything.")
        parser.add_argument("--adopt-new", action="store_true", help="Import new files where they lie.")

    def handle(self, *args, uuid, dry_run, adopt_new, **options):
        self.verbosity = options.get("verbosity", 1)
        try:
            storage = storage_get(uuid)
            storage_require_available(storage)
        except ImalinkError as exc:
            raise CommandError(exc.message) from None
        job = job_start(
            kind="scan", storage=storage, params={"dry_run": dry_run, "adopt_new": adopt_new}, enqueue=False
        )
        r = run_job_with_bar(self, job, desc=f"Scan of {storage.display_name}").result
        for title, key, fmt in (
            ("moved", "moved_files", lambda e: f"{e['old_path']} -> {e['new_path']}"),
            ("missing", "missing_files", lambda e: e["path"]),
            ("modified", "modified_files", lambda e: e["path"]),
            ("new", "new_files", lambda e: e["path"] + (" (adopted)" if e.get("adopted") else "")),
        ):
            for entry in r[key]:
                self.stdout.write(f"{title}: {fmt(entry)}")
        self.stdout.write(
            f"{len(r['moved_files'])} moved, {len(r['missing_files'])} missing, {len(r['modified_files'])} modified, "
            f"{len(r['new_files'])} new, {r['unchanged_count']} unchanged; "
            f"{r['bytes_read']:,} bytes read in {r['duration_s']}s" + (" (dry run: nothing written)" if dry_run else "")
        )
