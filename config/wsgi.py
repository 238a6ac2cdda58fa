"""WSGI entry point (`granian --interface wsgi config.wsgi:application`, as `manage.py start` runs it).

The URLconf (and with it every view module) is imported here, as the application loads, not by
the first request; then `gc.freeze()` moves everything loaded so far (Django, the apps, the
views: some 125,000 long-lived objects) out of the garbage collector's reach. Each
request allocates enough to trigger collections, and an oldest-generation collection would
otherwise walk all those objects again, in every worker, for nothing: they live as long as the
process. Objects created later are collected as usual. Each web server worker loads the
application, and freezes, on its own.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (imports the URLconf and the views now, before the freeze)
gc.freeze()
