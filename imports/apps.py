"""The imports app's configuration: it tells storages' layout check about the sessions' target folders."""

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Imports and photos"

    def ready(self):
        from storages.services import register_own_folders

        from .services import session_target_folders

        # Each session's target under photos/ must be a folder where it exists (storages' layout check).
        register_own_folders(session_target_folders)
