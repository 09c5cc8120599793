"""The indexing app's configuration: it registers the job runners of indexing (and the import's, with its
indexes written by indexing/rewrite.py)."""

from django.apps import AppConfig


class IndexingConfig(AppConfig):
    name = "indexing"
    verbose_name = "Indexes, scans, validation, recovery and health"

    def ready(self):
        from jobs.services import register_runner

        from . import batch, drill, health, recovery, rewrite, scanner, validation, writer

        # The import is imports' work; the indexes it leaves are written by the hook indexing gives it.
        register_runner("import", rewrite.run_import_job)
        register_runner("scan", scanner.run_scan_job)
        register_runner("index_session", writer.run_index_session_job)
        register_runner("index_storage", writer.run_index_storage_job)
        register_runner("index_batch", batch.run_index_batch_job)
        register_runner("validate", validation.run_validate_job)
        register_runner("recover", recovery.run_recover_job)
        register_runner("recovery_find", recovery.run_find_job)
        register_runner("recovery_drill", drill.run_drill_job)
        register_runner("health_check", health.run_health_job)
