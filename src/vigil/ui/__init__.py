"""The web console: see and steer models, endpoints, alerts, the audit trail and API keys
from a browser, served under ``/ui`` by ``vigil serve`` (see docs/console.md).

Server-rendered pages (Jinja2 templates, inline SVG charts), a little progressive
JavaScript for live counters, no network access at run time. Sessions, CSRF tokens and
security headers: :mod:`vigil.ui.console` and :mod:`vigil.ui.security`; the routes:
:mod:`vigil.ui.routes`; each page's data: :mod:`vigil.ui.pages`.
"""
