"""deploy/observability/: the alert rules and Prometheus configuration pass ``promtool``, and every query of the
rules and of the Grafana dashboard names a metric the services export — read from their registries
(``services.platform.metrics.ServiceMetrics``), not from a list kept by hand."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.stack import SERVICES
from services.platform.metrics import ServiceMetrics

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "prevex.json"
_NAME = re.compile(r"\bprevex_[a-z0-9_]+")
_NAME_REGEX = re.compile(r'__name__=~"([^"]+)"')
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported() -> set[str]:
    names = set()
    for service in SERVICES:
        for family in ServiceMetrics(service).registry.collect():
            names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def _unknown_names(expr: str, exported: set[str]) -> list[str]:
    """The metric names or ``__name__`` patterns of ``expr`` that no service exports."""
    literal = [name for name in _NAME.findall(_NAME_REGEX.sub("", expr)) if name not in exported]
    patterns = [p for p in _NAME_REGEX.findall(expr) if not any(re.fullmatch(p, name) for name in exported)]
    return literal + patterns


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text("utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_service_exports_its_message_business_and_table_metrics() -> None:
    exported = _exported()
    for service in SERVICES:
        for name in (
            "received_messages_total",
            "ready",
            "outbox_pending_events",
            "dead_letters",
            "consumer_lag_records",
        ):
            assert f"prevex_{service}_{name}" in exported
    assert {
        "prevex_ingest_acts_accepted_total",
        "prevex_ingest_acts_rejected_total",
        "prevex_ingest_duplicates_total",
        "prevex_orientation_decisions_total",
        "prevex_orientation_assignments",
        "prevex_notifier_deliveries_total",
        "prevex_notifier_retry_queue_deliveries",
        "prevex_notifier_retry_queue_oldest_due_seconds",
        "prevex_notifier_end_to_end_latency_seconds_bucket",
    } <= exported


def test_every_dashboard_query_names_an_exported_metric() -> None:
    exported = _exported()
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    for title, expr in exprs:
        # `up` is Prometheus's own: whether the scrape answered at all.
        assert _NAME.search(expr) or _NAME_REGEX.search(expr) or expr.startswith("up{"), f"{title}: names no metric"
        assert _unknown_names(expr, exported) == [], title


def test_the_dashboard_has_the_panels_ops_asked_for() -> None:
    titles = " | ".join(title for title, _ in _dashboard_exprs()).lower()
    for topic in (
        "ready",
        "accepted",
        "decisions",
        "assignments",
        "deliveries",
        "retry",
        "outbox",
        "dead letters",
        "lag",
        "end-to-end latency",
    ):
        assert topic in titles


def test_every_alert_rule_is_complete_and_names_exported_metrics() -> None:
    exported = _exported()
    rules = _rules()
    assert {rule["alert"] for rule in rules} >= {
        "ServiceNotReady",
        "ConsumerLagGrowing",
        "OutboxStuck",
        "DeadLettersAppearing",
        "RejectionsSpiking",
        "DeliveriesFailing",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if rule["alert"] != "ServiceDown":  # `up` is Prometheus's own
            assert _unknown_names(rule["expr"], exported) == [], rule["alert"]


def test_the_name_check_is_not_vacuous() -> None:
    exported = _exported()
    assert _unknown_names("rate(prevex_ingest_acts_accepted_totl[5m])", exported) == [
        "prevex_ingest_acts_accepted_totl"
    ]
    assert _unknown_names('{__name__=~"prevex_.+_outbox_backlog"}', exported) == ["prevex_.+_outbox_backlog"]


# `make test` installs promtool as root; in CI its absence is a failure, elsewhere a skip saying how to get it.
@pytest.mark.skipif(
    shutil.which("promtool") is None and os.environ.get("CI") != "true",
    reason="promtool missing: apt-get install prometheus",
)
@pytest.mark.parametrize(
    "command",
    [
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        # Each alert fires on the series meant to fire it and stays quiet on the others.
        ("test", "rules", "alerts_test.yml"),
    ],
)
def test_promtool_accepts_the_files(command: tuple[str, str, str]) -> None:
    result = subprocess.run(
        ["promtool", *command[:2], command[2]], capture_output=True, text=True, check=False, cwd=OBSERVABILITY
    )
    assert result.returncode == 0, result.stdout + result.stderr
