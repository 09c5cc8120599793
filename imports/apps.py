"""The imports app's configuration: it tells storages' layout check about the sessions' target folders."""

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Imports and photos"

    def ready(self):
        from jobs.services import register_runner
        from storages.services import register_own_folders

        from .services import session_target_folders
        from .verify import run_verify_source_job

        register_runner("verify_source", run_verify_source_job)

        # Each session's target under photos/ must be a folder where it exists (storages' layout check).
        register_own_folders(session_target_folders)
