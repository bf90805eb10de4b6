-- Every distinct référentiel ever loaded; decisions name the version they used.
CREATE TABLE referential_version (
    version      integer PRIMARY KEY,
    content_hash text        NOT NULL UNIQUE,
    document     jsonb       NOT NULL,
    source       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assignment (
    assignment_id       uuid PRIMARY KEY,
    procedure_id        uuid        NOT NULL,
    structure_id        text        NOT NULL,
    offer_ids           text[]      NOT NULL,
    status              text        NOT NULL DEFAULT 'OUVERTE',  -- OUVERTE | ACCEPTEE | REFUSEE | EXPIREE | CLOTUREE
    mandatory           boolean     NOT NULL,
    priority            integer     NOT NULL,
    over_capacity       boolean     NOT NULL,
    explanation         text        NOT NULL,
    referentiel_version integer     NOT NULL REFERENCES referential_version,
    notification_id     uuid        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- A structure holds at most one open or accepted assignment per procedure (docs/domain.md §5.4).
CREATE UNIQUE INDEX assignment_one_open ON assignment (procedure_id, structure_id)
    WHERE status IN ('OUVERTE', 'ACCEPTEE');
CREATE INDEX assignment_created ON assignment (created_at);

CREATE TABLE decision (
    decision_id         uuid PRIMARY KEY,          -- the orientation.decided event id
    procedure_id        uuid        NOT NULL,
    notification_id     uuid        NOT NULL,
    stage               text        NOT NULL,
    referentiel_version integer     NOT NULL REFERENCES referential_version,
    rules_version       text        NOT NULL,
    fallback_used       boolean     NOT NULL,
    result              jsonb       NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decision_by_procedure ON decision (procedure_id, created_at);
