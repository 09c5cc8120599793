from django.apps import AppConfig


class ImalinkConfig(AppConfig):
    name = "imalink"
    verbose_name = "ImaLink access"
