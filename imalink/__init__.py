"""ImaLink: the Django project package.

It also acts as the app that holds API tokens, so that importing it loads the Celery app for @shared_task.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
