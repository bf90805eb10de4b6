-- The workspace's read model, built from the topics only (never from another service's tables), plus its
-- own sessions, the partners' actions and the audit log.

-- One procedure as the workspace knows it: the latest notice's case file (personal data: NULL once purged,
-- retention_days after the procedure closed) and what orientation's latest decision said about it.
CREATE TABLE procedure (
    procedure_id            uuid PRIMARY KEY,
    short_ref               text        NOT NULL,
    correlation_id          uuid,
    revision                integer     NOT NULL DEFAULT 0,
    case_file               jsonb,
    stage                   text,
    urgency                 text,
    commune_insee           text,
    commune_name            text,
    earliest_expulsion_date date,
    decided_at              timestamptz,
    closed_at               timestamptz,
    purged_at               timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX procedure_closed ON procedure (closed_at) WHERE closed_at IS NOT NULL AND purged_at IS NULL;

-- Every act received for a procedure: its stage, dates and emitter kind (no personal data).
CREATE TABLE stage_received (
    notification_id uuid PRIMARY KEY,
    procedure_id    uuid        NOT NULL,
    revision        integer     NOT NULL,
    stage           text        NOT NULL,
    act_date        date        NOT NULL,
    hearing_date    date,
    emitter_type    text        NOT NULL,
    is_correction   boolean     NOT NULL,
    is_late         boolean     NOT NULL,
    received_at     timestamptz NOT NULL
);
CREATE INDEX stage_received_procedure ON stage_received (procedure_id);

-- Each assignment orientation decided, and its status as assignment.status events moved it.
-- link_prefix: the first 6 bytes of the id, which is what a link token carries (services/platform/links.py).
CREATE TABLE assignment (
    assignment_id  uuid PRIMARY KEY,
    link_prefix    bytea       NOT NULL,
    procedure_id   uuid        NOT NULL,
    structure_id   text        NOT NULL,
    status         text        NOT NULL DEFAULT 'OUVERTE',
    status_reason  text,
    status_at      timestamptz NOT NULL,
    mandatory      boolean     NOT NULL,
    over_capacity  boolean     NOT NULL,
    offer_ids      text[]      NOT NULL,
    explanation    text,
    decided_at     timestamptz NOT NULL
);
CREATE INDEX assignment_link_prefix ON assignment (link_prefix);
CREATE INDEX assignment_structure ON assignment (structure_id, status);
CREATE INDEX assignment_procedure ON assignment (procedure_id);

-- The référentiel as the compacted topic publishes it: the last record of each structure.
CREATE TABLE structure (
    structure_id         text PRIMARY KEY,
    referentiel_version  integer     NOT NULL,
    record               jsonb       NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- A signed-in partner: the cookie holds a random secret, this table only its SHA-256.
CREATE TABLE session (
    session_id    uuid PRIMARY KEY,
    token_hash    bytea       NOT NULL UNIQUE,
    structure_id  text        NOT NULL,
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    ended_at      timestamptz
);

-- What a partner asked (accept, refuse, close), the assignment.status event it published (event_id) and
-- what became of it once the event came back through the topic (outcome). The comment is free text about
-- a household: it stays here (never in an event) and is purged with the case file.
CREATE TABLE partner_action (
    event_id        uuid PRIMARY KEY,
    assignment_id   uuid        NOT NULL,
    session_id      uuid        NOT NULL,
    action          text        NOT NULL,
    reason          text,
    comment         text,
    requested_at    timestamptz NOT NULL,
    outcome         text,
    outcome_detail  text
);
CREATE INDEX partner_action_assignment ON partner_action (assignment_id);

-- Every view and action: who (session, structure), when, which procedure, what, and how it ended.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL,
    session_id    uuid,
    structure_id  text,
    procedure_id  uuid,
    action        text        NOT NULL,
    outcome       text        NOT NULL
);
CREATE INDEX audit_log_procedure ON audit_log (procedure_id, at);
