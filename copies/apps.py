"""The copies app's configuration: its jobs are registered with the job framework."""

from django.apps import AppConfig


class CopiesConfig(AppConfig):
    name = "copies"
    verbose_name = "Copies across storages"

    def ready(self):
        from jobs.services import register_runner

        from . import migration, reconcile, repair, replication

        for module in (replication, migration, repair, reconcile):
            for kind, runner in module.JOB_RUNNERS.items():
                register_runner(kind, runner)
