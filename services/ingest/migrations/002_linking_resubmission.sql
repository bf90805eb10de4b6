-- Deduplication on content, not formatting: the hash of the canonical JSON (sorted keys, no whitespace).
-- NULL on rows recorded before this migration; they fall back to payload_sha256.
ALTER TABLE procedure_stage_event ADD COLUMN content_sha256 text;
-- LINK_LOW_CONFIDENCE: the open procedure at the same address the act was *not* merged into, for review.
ALTER TABLE procedure_stage_event ADD COLUMN link_candidate_procedure_id uuid REFERENCES procedure;

-- Earliest CCAPEX saisine received: bounds earliest_assignation_date of later acts (docs/domain.md §2.5).
ALTER TABLE procedure ADD COLUMN saisine_date date;
-- Reopen after CLOTURE (docs/domain.md §1.2) needs closed procedures too: a link-key index on every status,
-- which supersedes the open-only one (one index less to maintain per new procedure).
CREATE INDEX procedure_by_link_any ON procedure (link_key, created_at);
DROP INDEX procedure_by_link;

-- A corrected payload re-submitted by ops points at the rejection it corrects.
ALTER TABLE raw_inbound ADD COLUMN corrects_rejection_id uuid REFERENCES rejection;
CREATE INDEX raw_inbound_corrects ON raw_inbound (corrects_rejection_id) WHERE corrects_rejection_id IS NOT NULL;
-- Where in its source an input was: the line of a CSV file (per-line reports, ops lookups).
ALTER TABLE raw_inbound ADD COLUMN source_line integer;

CREATE INDEX rejection_by_time ON rejection (created_at);

-- A canonical record is ~3 kB of JSON and its event a little more: above the 2 kB default, PostgreSQL
-- compresses every row with pglz, a third of the cost of inserting a batch. Rows up to a page stay inline
-- and uncompressed instead (measured: 65 → 43 ms per 500 records).
ALTER TABLE procedure_stage_event SET (toast_tuple_target = 8160);
ALTER TABLE outbox SET (toast_tuple_target = 8160);
