-- Transactional outbox: rows written in the same transaction as the business rows, published by
-- the relay, marked only after the broker acknowledged them.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text        NOT NULL,
    key          bytea,
    value        bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Inbox: one row per consumed event id, written in the same transaction as its effects, so a
-- redelivered event is recognised and skipped.
CREATE TABLE inbox (
    event_id    uuid PRIMARY KEY,
    topic       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Records of our own topics that could not be decoded: kept here instead of blocking a partition.
CREATE TABLE dead_letter (
    id           bigserial PRIMARY KEY,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    error        text        NOT NULL,
    value        bytea,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);
