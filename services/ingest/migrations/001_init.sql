-- Every inbound payload as received, before any validation: nothing is lost, even what we reject.
-- Purged after INGEST_RAW_RETENTION_DAYS (docs/domain.md §8.5: raw payloads kept ≤ 90 days).
CREATE TABLE raw_inbound (
    raw_id         uuid PRIMARY KEY,
    source_system  text        NOT NULL,
    channel        text        NOT NULL,           -- kafka:<topic>, http, csv:<file>
    -- Kafka position: a redelivered record is recognised here and skipped.
    kafka_topic    text,
    kafka_partition integer,
    kafka_offset   bigint,
    emitter_key    text,
    payload        bytea       NOT NULL,
    payload_sha256 text        NOT NULL,
    received_at    timestamptz NOT NULL,
    outcome        text        NOT NULL,           -- ACCEPTED | CORRECTION | DUPLICATE_IGNORED | REJECTED
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX raw_inbound_received_at ON raw_inbound (received_at);

CREATE SEQUENCE procedure_short_ref_seq;

CREATE TABLE procedure (
    procedure_id   uuid PRIMARY KEY,
    short_ref      text        NOT NULL UNIQUE,
    correlation_id uuid        NOT NULL,
    departement    text        NOT NULL,
    procedure_ref  text,                          -- emitter's file number or EXPLOC number
    link_key       text,                          -- sha256 of commune | address | first tenant
    address_key    text,                          -- sha256 of commune | address: flags ambiguous links
    current_stage  text        NOT NULL,
    current_rank   integer     NOT NULL DEFAULT 0,
    status         text        NOT NULL DEFAULT 'OPEN',  -- OPEN | CLOSED
    reopened_count integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX procedure_by_ref ON procedure (procedure_ref) WHERE procedure_ref IS NOT NULL;
CREATE INDEX procedure_by_link ON procedure (link_key) WHERE status = 'OPEN';
CREATE INDEX procedure_by_address ON procedure (address_key) WHERE status = 'OPEN';

-- Append-only: one row per accepted notification revision.
CREATE TABLE procedure_stage_event (
    notification_id uuid PRIMARY KEY,
    procedure_id    uuid        NOT NULL REFERENCES procedure,
    idempotency_key text        NOT NULL,
    revision        integer     NOT NULL,
    payload_sha256  text        NOT NULL,
    stage           text        NOT NULL,
    act_date        date        NOT NULL,
    is_late         boolean     NOT NULL,
    is_correction   boolean     NOT NULL,
    record          jsonb       NOT NULL,
    raw_id          uuid        NOT NULL REFERENCES raw_inbound,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (idempotency_key, revision)
);
CREATE INDEX stage_event_by_procedure ON procedure_stage_event (procedure_id, created_at);

CREATE TABLE rejection (
    rejection_id   uuid PRIMARY KEY,
    raw_id         uuid        NOT NULL REFERENCES raw_inbound,
    emitter_id     text        NOT NULL,
    external_ref   text,
    errors         jsonb       NOT NULL,          -- [{code, field, message}], no personal data
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejection_by_emitter ON rejection (emitter_id, created_at);

CREATE TABLE duplicate_count (
    idempotency_key text PRIMARY KEY,
    count           integer     NOT NULL,
    last_seen_at    timestamptz NOT NULL DEFAULT now()
);
