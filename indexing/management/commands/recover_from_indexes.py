"""Rebuild the database from the JSON indexes of every storage found under the given folders."""

from django.core.management.base import BaseCommand, CommandError

from imalink.errors import ImalinkError
from jobs.cli import run_job_with_bar
from jobs.services import job_start
from storages.paths import resolve_client_dir


class Command(BaseCommand):
    help = "Find imalink_* storages under ROOT... and restore their storages, sessions, photos and files."

    def add_arguments(self, parser):
        parser.add_argument("roots", nargs="+", metavar="ROOT")
        parser.add_argument("--dry-run", action="store_true", help="Report what would be restored, keep nothing.")

    def handle(self, *args, roots, dry_run, **options):
        self.verbosity = options.get("verbosity", 1)
        try:
            checked = [str(resolve_client_dir(root, field="search_roots")) for root in roots]
        except ImalinkError as exc:
            raise CommandError(exc.message) from None
        job = job_start(kind="recover", params={"search_roots": checked, "dry_run": dry_run}, enqueue=False)
        result = run_job_with_bar(self, job, desc="Recovery", unit="storage").result
        for s in result["storages"]:
            self.stdout.write(
                f"{s['path']}: {s['outcome']}; {len(s['sessions_restored'])} sessions, {s['photos_restored']} photos, "
                f"{s['files_restored']} files restored ({s['files_existing']} already known), "
                f"{s['missing_count']} missing, "
                f"{len(s['conflicts'])} conflicts, {len(s['problems'])} problems"
            )
            for c in s["conflicts"]:
                self.stdout.write(f"  conflict: {c['where']}: {c['conflict']}")
            for p in s["problems"]:
                self.stdout.write(f"  problem: {p['where']}: {p['problem']}")
        self.stdout.write(f"Found {result['found']} storages" + (" (dry run: nothing kept)" if dry_run else "") + ".")
