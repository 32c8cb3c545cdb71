"""The console's pages: each module builds one page's data (a plain dataclass) from the
installation's stores; templates draw it; :mod:`vigil.ui.routes` serves it."""
