-- Contacts, read from the référentiel topic (orientation's tables are not ours to read).
CREATE TABLE structure_directory (
    structure_id        text PRIMARY KEY,
    nom                 text        NOT NULL,
    is_default_referent boolean     NOT NULL,
    referentiel_version integer     NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contact (
    structure_id  text    NOT NULL REFERENCES structure_directory ON DELETE CASCADE,
    contact_id    text    NOT NULL,
    label         text    NOT NULL,
    email         text,
    mobile        text,
    email_enabled boolean NOT NULL,
    sms_enabled   boolean NOT NULL,
    is_generic    boolean NOT NULL,
    PRIMARY KEY (structure_id, contact_id)
);

-- One alert per thing a structure must hear about; expanded into deliveries once its contacts are known.
CREATE TABLE alert (
    alert_id                uuid PRIMARY KEY,
    alert_key               text        NOT NULL UNIQUE,   -- e.g. new:<assignment_id>
    correlation_id          uuid        NOT NULL,
    procedure_id            uuid        NOT NULL,
    procedure_short_ref     text        NOT NULL,
    assignment_id           uuid,
    structure_id            text        NOT NULL,
    stage                   text        NOT NULL,
    urgency                 text        NOT NULL,
    commune                 text        NOT NULL,
    earliest_expulsion_date date,
    manual_orientation      boolean     NOT NULL DEFAULT false,
    state                   text        NOT NULL DEFAULT 'AWAITING_CONTACTS',  -- | EXPANDED
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_awaiting ON alert (created_at) WHERE state = 'AWAITING_CONTACTS';

-- One row per (alert, channel, recipient): the unique key is what makes a replay send nothing twice.
CREATE TABLE delivery (
    delivery_id         uuid PRIMARY KEY,
    idempotency_key     text        NOT NULL UNIQUE,
    alert_id            uuid        NOT NULL REFERENCES alert,
    structure_id        text        NOT NULL,
    contact_id          text        NOT NULL,
    channel             text        NOT NULL,       -- EMAIL | SMS
    recipient           text        NOT NULL,
    state               text        NOT NULL DEFAULT 'pending',  -- pending | sending | sent | retrying | failed
    attempts            integer     NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_until         timestamptz,
    provider            text,
    provider_message_id text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz
);
CREATE INDEX delivery_due ON delivery (next_attempt_at) WHERE state IN ('pending', 'retrying', 'sending');
