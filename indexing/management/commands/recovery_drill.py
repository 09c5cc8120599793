"""Rebuild from the indexes into a scratch database and report every difference from the live one."""

from django.core.management.base import BaseCommand, CommandError

from imalink.errors import ImalinkError
from jobs.cli import run_job_with_bar
from jobs.services import job_start
from storages.paths import resolve_client_dir


class Command(BaseCommand):
    help = (
        "Test recovery: rebuild the storages under ROOT... (default: every active storage) "
        "in a scratch database and compare."
    )

    def add_arguments(self, parser):
        parser.add_argument("roots", nargs="*", metavar="ROOT")

    def handle(self, *args, roots, **options):
        self.verbosity = options.get("verbosity", 1)
        try:
            checked = [str(resolve_client_dir(root, field="search_roots")) for root in roots]
        except ImalinkError as exc:
            raise CommandError(exc.message) from None
        job = job_start(kind="recovery_drill", params={"search_roots": checked}, enqueue=False)
        result = run_job_with_bar(self, job, desc="Recovery drill", unit="step").result
        for d in result["differences"]:
            self.stdout.write(
                f"difference: {d['kind']} {d['key']} {d['field'] or ''}: "
                f"live={d['live']!r} recovered={d['recovered']!r}"
            )
        self.stdout.write(
            f"Checked {len(result['storages_checked'])} storages: {result['difference_count']} differences."
        )
        if not result["passed"]:
            raise CommandError(
                "The recovery drill found differences (or no storage): "
                "the indexes would not restore this database exactly."
            )
