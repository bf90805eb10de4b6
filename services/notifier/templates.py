"""Loads the alert templates shipped in ``services/notifier/templates/`` (the only file reads of rendering)."""

from __future__ import annotations

from importlib.resources import files

from services.notifier.domain.alerts import TEMPLATE_NAMES, AlertTemplates
from services.notifier.domain.removal import REMOVAL_TEMPLATE_NAMES, check_removal_sources

__all__ = ["load_templates"]


def load_templates(*, prefix: str, sms_prefix: str) -> AlertTemplates:
    """The packaged French templates, the removal notice's included (``domain/removal.py``); ``prefix`` heads
    emails, ``sms_prefix`` SMS (e.g. the département).

    Raises ``AlertTemplateError`` when a template is missing, does not parse or reads a forbidden variable.
    """
    folder = files("services.notifier") / "templates"
    sources = {name: (folder / name).read_text("utf-8") for name in (*TEMPLATE_NAMES, *REMOVAL_TEMPLATE_NAMES)}
    check_removal_sources(sources)
    return AlertTemplates(sources, prefix=prefix, sms_prefix=sms_prefix)
