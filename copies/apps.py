"""The copies app's configuration: its jobs are registered with the job framework, and its move finder with the scan."""

from django.apps import AppConfig


class CopiesConfig(AppConfig):
    name = "copies"
    verbose_name = "Copies across storages"

    def ready(self):
        from indexing.scanner import register_cross_move_finder
        from jobs.services import register_runner

        from . import migration, reconcile, repair, replication

        for module in (replication, migration, repair, reconcile):
            for kind, runner in module.JOB_RUNNERS.items():
                register_runner(kind, runner)
        # A scan with adopt_new pairs a new file with one that left another storage before adopting it (issue 17.7).
        register_cross_move_finder(reconcile.scan_finder)
