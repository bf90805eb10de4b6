"""A package for pytest, so that its conftest's package-scoped fixtures stop once its tests ran:
the four services, their broker, database and SMTP sink, and Chromium.

Without an ``__init__.py`` pytest has no package node for a directory and "package" scope is the whole
session: an idle stack would keep polling its broker and database through every later test of the run.
"""
