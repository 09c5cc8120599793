from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Imports and photos"

    def ready(self):
        from jobs.services import register_runner

        from .pipeline import run_import_job

        register_runner("import", run_import_job)
