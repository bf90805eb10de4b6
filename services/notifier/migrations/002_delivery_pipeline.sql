-- Quiet hours of SMS contacts (local time; NULL = the notifier's default).
ALTER TABLE contact
    ADD COLUMN quiet_start time,
    ADD COLUMN quiet_end   time;

-- How an alert is told: at once, or as a line of the contact's daily digest (low-urgency stage updates).
-- seq: the order decisions were consumed in (created_at is the same for a whole consumed batch).
ALTER TABLE alert
    ADD COLUMN mode         text    NOT NULL DEFAULT 'IMMEDIATE',  -- IMMEDIATE | DIGEST
    ADD COLUMN stage_update boolean NOT NULL DEFAULT false,
    ADD COLUMN seq          bigserial;
DROP INDEX alert_awaiting;
CREATE INDEX alert_awaiting ON alert (seq) WHERE state = 'AWAITING_CONTACTS';

-- One digest per (day, structure, contact, channel, recipient): the unique key makes planning it twice a no-op.
CREATE TABLE digest (
    digest_id    uuid PRIMARY KEY,
    digest_key   text        NOT NULL UNIQUE,
    structure_id text        NOT NULL,
    day          date        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A digest alert expanded for one recipient; attached to a digest once its day's cut-off passed.
CREATE TABLE digest_item (
    alert_id      uuid        NOT NULL REFERENCES alert,
    structure_id  text        NOT NULL,
    contact_id    text        NOT NULL,
    channel       text        NOT NULL,
    recipient     text        NOT NULL,
    quiet_start   time,
    quiet_end     time,
    -- Set when the alert's own structure had no deliverable contact and the default referent stands in.
    fallback_kind text,
    digest_id     uuid REFERENCES digest,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (alert_id, channel, recipient)
);
CREATE INDEX digest_item_unplanned ON digest_item (created_at) WHERE digest_id IS NULL;
CREATE INDEX digest_item_digest ON digest_item (digest_id);

-- Deliveries: of an alert, or of a digest; first-hand or fallback (F3); ordered per procedure by seq.
ALTER TABLE delivery
    ALTER COLUMN alert_id DROP NOT NULL,
    ADD COLUMN digest_id     uuid REFERENCES digest,
    ADD COLUMN procedure_id  uuid,
    ADD COLUMN seq           bigserial,
    ADD COLUMN fallback_kind text,          -- NULL (first-hand) | GENERIC_CONTACT | DEFAULT_REFERENT
    ADD COLUMN fallback_of   uuid REFERENCES delivery,
    ADD COLUMN quiet_start   time,
    ADD COLUMN quiet_end     time,
    ADD COLUMN lease_token   uuid,
    ADD CONSTRAINT delivery_of_alert_or_digest CHECK ((alert_id IS NULL) <> (digest_id IS NULL));
UPDATE delivery d SET procedure_id = a.procedure_id FROM alert a WHERE a.alert_id = d.alert_id;

DROP INDEX delivery_due;
CREATE INDEX delivery_due ON delivery (next_attempt_at, seq) WHERE state IN ('pending', 'retrying');
CREATE INDEX delivery_leased ON delivery (lease_until) WHERE state = 'sending';
CREATE INDEX delivery_sending_procedure ON delivery (procedure_id) WHERE state = 'sending';
