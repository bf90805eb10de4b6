"""Schemathesis against the running orientation service's admin API, from its committed OpenAPI document.

Every operation gets a bounded number of generated requests (derandomised: the same ones every run),
with the admin bearer token of the service's tokens file, and each answer must be no server error, a
documented status code and content type, and match its documented schema. Generated changes that are
valid make new référentiel versions of this module's own service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.orientation.http import OPENAPI_PATH

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiCase

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ADMIN_TOKEN = "pvx_e2e-admin-token"  # the test token of conftest.py

# The coverage phase (every boundary of every field) alone took minutes on the source formats' schemas:
# the examples and the bounded, derandomised fuzzing phase keep the run within the suite's budget.
schema = schemathesis.openapi.from_path(
    OPENAPI_PATH, config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
)


@schema.parametrize()
@settings(max_examples=20, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_running_orientation_admin_api_keeps_its_contract(case: OpenApiCase, orientation: Any) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    case.call_and_validate(base_url=orientation.admin_url, headers=headers, checks=CHECKS)
