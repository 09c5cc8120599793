"""The jobs app's configuration; the runners are registered by the apps that own them."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
