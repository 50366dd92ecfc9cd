"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")

application = get_wsgi_application()

# A model store that cannot be used stops the start, with the reason.
from registry.checks import refuse_to_start_without_store  # noqa: E402

refuse_to_start_without_store()
