"""A package so that the test packages below it are named from the repository root (``tests.e2e.notifier``,
``tests.integration.notifier``): below a plain directory pytest would name both ``notifier`` and refuse the
second. Why some test directories are packages: tests/browser/__init__.py.
"""
