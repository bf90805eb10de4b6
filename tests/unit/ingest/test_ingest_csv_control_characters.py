"""A CSV header's unknown column names are quoted back without their control characters.

The rejection's message is stored in a jsonb column, which refuses a NUL: quoting a header such as
``Z9\\x00E)0`` as it came made the upload answer 503, found by the API fuzzing of the running service.
"""

from __future__ import annotations

from services.ingest.domain.csv_rows import parse_csv


def test_an_unknown_column_with_a_nul_is_named_without_it() -> None:
    parsed = parse_csv(b"Z9\x00E)0;ref\x07\n", emitter_siret="99990000100015")
    assert parsed.error is not None
    assert (parsed.error.code, parsed.error.field) == ("SCHEMA_INVALID", "csv.header")
    assert parsed.error.message == "unknown columns: z9?e)0, ref?"
    assert parsed.error.message.isprintable()
