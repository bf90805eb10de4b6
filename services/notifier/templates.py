"""Loads the alert templates shipped in ``services/notifier/templates/`` (the only file reads of rendering)."""

from __future__ import annotations

from importlib.resources import files

from services.notifier.domain.alerts import TEMPLATE_NAMES, AlertTemplates
from services.notifier.domain.removal import REMOVAL_TEMPLATE_NAMES, check_removal_sources
from services.notifier.link_requests import NEW_LINK_TEMPLATE_NAMES, check_new_link_sources

__all__ = ["load_templates"]


def load_templates(*, prefix: str, sms_prefix: str) -> AlertTemplates:
    """The packaged French templates, the removal notice's (``domain/removal.py``) and the new link's
    (``link_requests.py``) included; ``prefix`` heads emails, ``sms_prefix`` SMS (e.g. the département).

    Raises ``AlertTemplateError`` when a template is missing, does not parse or reads a forbidden variable.
    """
    folder = files("services.notifier") / "templates"
    names = (*TEMPLATE_NAMES, *REMOVAL_TEMPLATE_NAMES, *NEW_LINK_TEMPLATE_NAMES)
    sources = {name: (folder / name).read_text("utf-8") for name in names}
    check_removal_sources(sources)
    check_new_link_sources(sources)
    return AlertTemplates(sources, prefix=prefix, sms_prefix=sms_prefix)
