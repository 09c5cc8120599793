"""The imalink app's configuration (API tokens live in this app)."""

from django.apps import AppConfig


class ImalinkConfig(AppConfig):
    name = "imalink"
    verbose_name = "ImaLink access"
