"""Schemathesis against the running ingest service, from its committed OpenAPI document.

Every operation gets a bounded number of generated requests (derandomised: the same ones every run),
authenticated with a development API key of the emitters registry, and each answer must be no server
error, a documented status code and content type, and match its documented schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.ingest.cli import OPENAPI_PATH

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiCase

    from tests.e2e.ingest.conftest import IngestService

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Development keys (docs/ingest.md): CSV files come from a bailleur, acts from a commissaire de justice.
KEYS = {"/v1/csv": "prevex-dev-key-th-0002"}
CJ_KEY = "prevex-dev-key-cj-0001"


# The coverage phase (every boundary of every field) alone took minutes on the source formats' schemas:
# the examples and the bounded, derandomised fuzzing phase keep the run within the suite's budget.
schema = schemathesis.openapi.from_path(
    OPENAPI_PATH, config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
)


@schema.parametrize()
@settings(max_examples=20, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_running_ingest_keeps_its_contract(case: OpenApiCase, ingest_service: IngestService) -> None:
    key = KEYS.get(case.path, CJ_KEY)
    headers = {"Authorization": f"Bearer {key}"}
    case.call_and_validate(base_url=ingest_service.base_url, headers=headers, checks=CHECKS)
