"""Loads the alert templates shipped in ``services/notifier/templates/``."""

from __future__ import annotations

from importlib.resources import files

from services.notifier.domain.alerts import AlertTemplates

__all__ = ["load_templates"]


def load_templates(prefix: str) -> AlertTemplates:
    """The packaged French templates, with ``prefix`` as the alerts' heading (e.g. the département)."""
    folder = files("services.notifier") / "templates"
    return AlertTemplates(
        prefix=prefix,
        subject=(folder / "email_subject.txt").read_text("utf-8"),
        text=(folder / "email.txt").read_text("utf-8"),
        html=(folder / "email.html").read_text("utf-8"),
        sms=(folder / "sms.txt").read_text("utf-8"),
    )
