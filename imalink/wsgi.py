"""WSGI entry point, for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imalink.settings")
application = get_wsgi_application()

from imalink.api import openapi_document_build  # noqa: E402

openapi_document_build()  # as each worker starts, not during its first requests
