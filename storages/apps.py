"""The storages app's configuration: it registers the accessibility check as a job runner."""

from django.apps import AppConfig


class StoragesConfig(AppConfig):
    name = "storages"
    verbose_name = "Storages"

    def ready(self):
        from jobs.services import register_runner

        from .services import run_accessibility_check_job

        register_runner("accessibility_check", run_accessibility_check_job)
