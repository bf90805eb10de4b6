"""A far-future or far-past date on the Kafka raw topic, as the running service consumes it.

The act is stored and rejected ``DATE_OUT_OF_RANGE``, and the acts published after it are accepted: the
intake goes on. Before, the trêve computation raised on ``9999-12-31`` and the batch came back forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from schemas import topics

if TYPE_CHECKING:
    from tests.e2e.ingest.conftest import IngestService, TopicLog

pytestmark = pytest.mark.e2e

CJ = b"12345678900011"


@pytest.mark.parametrize("vacate_by", ["9999-12-31", "0001-01-01"])
async def test_an_out_of_range_date_on_kafka_is_rejected_and_the_intake_goes_on(
    ingest_service: IngestService,
    publish: Callable[..., Any],
    example: Callable[..., bytes],
    outputs: TopicLog,
    vacate_by: str,
) -> None:
    far_ref, next_ref = f"CQL-FAR-{vacate_by}", f"CP-AFTER-{vacate_by}"
    far = example("s06-cj-commandement-quitter", external_ref=far_ref, commandement_quitter__vacate_by=vacate_by)
    # A household of its own: the scenario tests of this service expect S-01's to be new.
    tenants = [{"last_name": f"Borne-{vacate_by[:4]}", "first_name": "Max"}]
    after = example("s01-cj-commandement-payer", external_ref=next_ref, tenants=tenants)
    await publish(topics.RAW_CJ, [(CJ, far), (CJ, after)])

    def rejected() -> list[dict[str, Any]]:
        return outputs.distinct(topics.INGEST_REJECTED, lambda e: e["payload"]["external_ref"] == far_ref)

    def accepted() -> list[dict[str, Any]]:
        return outputs.distinct(
            topics.PROCEDURE_NOTIFICATION, lambda e: e["payload"]["notification"]["source"]["external_ref"] == next_ref
        )

    await outputs.wait(lambda: bool(rejected()) and bool(accepted()), "the far act rejected, the next one accepted")
    [event] = rejected()
    assert [(e["code"], e["field"]) for e in event["payload"]["errors"]] == [
        ("DATE_OUT_OF_RANGE", "commandement_quitter.vacate_by")
    ]
