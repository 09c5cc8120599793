"""The Celery app shared by the web process, the workers and beat.

Configuration comes from Django settings under the CELERY_ prefix; tasks are found in each app's tasks.py.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imalink.settings")

app = Celery("imalink")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from imalink import worker_start  # noqa: E402,F401  (the worker's start-up line: instance and queue)
