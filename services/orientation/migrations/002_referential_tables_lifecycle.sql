-- 002: the référentiel as real tables, versioned; the assignment lifecycle and CCAPEX overrides.
--
-- Versioning. Every change creates a new referential_version. A structure or offer row is one revision
-- of that entity: it holds from version `from_version` until `until_version` (exclusive, NULL = still
-- current), so version V is the set of rows with from_version <= V < coalesce(until_version, ∞). A
-- change closes the changed entities' current rows and inserts their new revisions; unchanged entities
-- keep their rows. Contacts, eligibility and zones belong to the revision of their structure or offer.
-- Version numbers only grow: going back to an earlier content is a new version with that content.

ALTER TABLE referential_version DROP CONSTRAINT referential_version_content_hash_key;
CREATE INDEX referential_version_content_hash ON referential_version (content_hash);
ALTER TABLE referential_version
    ADD COLUMN default_referent text,
    ADD COLUMN author           text  NOT NULL DEFAULT 'system',
    ADD COLUMN changes          jsonb NOT NULL DEFAULT '[]'::jsonb;  -- one line per changed entity

CREATE TABLE structure (
    structure_id     text    NOT NULL,
    from_version     integer NOT NULL REFERENCES referential_version,
    until_version    integer REFERENCES referential_version,
    position         integer NOT NULL,  -- order in the file it came from; exports keep it
    nom              text    NOT NULL,
    siret            text,
    typologie        text    NOT NULL,
    reseaux_porteurs text[]  NOT NULL DEFAULT '{}',
    code_insee       text,
    date_maj         date,
    assured_date     date,
    status           text    NOT NULL CHECK (status IN ('active', 'suspended', 'archived')),
    PRIMARY KEY (structure_id, from_version),
    CHECK (until_version IS NULL OR until_version > from_version)
);
CREATE UNIQUE INDEX structure_current ON structure (structure_id) WHERE until_version IS NULL;

CREATE TABLE contact (
    structure_id       text    NOT NULL,
    from_version       integer NOT NULL,
    position           integer NOT NULL,
    contact_id         text    NOT NULL,
    label              text    NOT NULL,
    email              text,
    mobile             text,
    email_enabled      boolean NOT NULL,
    sms_enabled        boolean NOT NULL,
    is_generic_mailbox boolean NOT NULL,
    quiet_start        time,
    quiet_end          time,
    PRIMARY KEY (structure_id, from_version, position),
    FOREIGN KEY (structure_id, from_version) REFERENCES structure ON DELETE CASCADE
);

CREATE TABLE offer (
    offer_id                     text    NOT NULL,
    from_version                 integer NOT NULL REFERENCES referential_version,
    until_version                integer REFERENCES referential_version,
    position                     integer NOT NULL,
    structure_id                 text    NOT NULL,
    nom                          text    NOT NULL,
    description                  text    NOT NULL,
    type                         text    NOT NULL,
    thematiques                  text[]  NOT NULL DEFAULT '{}',
    modes_mobilisation           text[]  NOT NULL DEFAULT '{}',
    mobilisable_par              text[]  NOT NULL DEFAULT '{}',
    conditions_acces             text,
    priority                     integer NOT NULL,
    mandatory_stages             text[]  NOT NULL DEFAULT '{}',
    max_new_assignments_per_week integer,
    date_maj                     date,
    suspension_date              date,
    status                       text    NOT NULL CHECK (status IN ('active', 'suspended', 'archived')),
    PRIMARY KEY (offer_id, from_version),
    CHECK (until_version IS NULL OR until_version > from_version)
);
CREATE UNIQUE INDEX offer_current ON offer (offer_id) WHERE until_version IS NULL;

-- Typed eligibility (docs/domain.md §4.3): NULL = no constraint.
CREATE TABLE offer_eligibility (
    offer_id                text    NOT NULL,
    from_version            integer NOT NULL,
    stages                  text[],
    parc                    text,
    landlord_types          text[],
    landlord_siren_in       text[],
    debt_min                numeric(12, 2),
    debt_max                numeric(12, 2),
    months_of_rent_min      numeric(6, 2),
    resources_max           numeric(12, 2),
    allocataire             text,
    compositions            text[],
    children_min            integer,
    requires_surendettement boolean NOT NULL DEFAULT false,
    valid_from              date,
    valid_to                date,
    PRIMARY KEY (offer_id, from_version),
    FOREIGN KEY (offer_id, from_version) REFERENCES offer ON DELETE CASCADE
);

-- data·inclusion zone_eligibilite + Histologe's exclusions: included areas, then excluded communes.
CREATE TABLE offer_zone (
    offer_id     text    NOT NULL,
    from_version integer NOT NULL,
    position     integer NOT NULL,
    kind         text    NOT NULL CHECK (kind IN ('COMMUNE', 'EPCI', 'DEPARTEMENT')),
    code         text    NOT NULL,
    excluded     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (offer_id, from_version, position),
    FOREIGN KEY (offer_id, from_version) REFERENCES offer ON DELETE CASCADE,
    CHECK (NOT excluded OR kind = 'COMMUNE')
);

-- Versions stored by 001 as whole documents become rows: version V's document holds from V until the
-- next version.
CREATE TEMPORARY TABLE _doc ON COMMIT DROP AS
SELECT version, lead(version) OVER (ORDER BY version) AS until_version, document
  FROM referential_version;

UPDATE referential_version v SET default_referent = d.document ->> 'default_referent'
  FROM _doc d WHERE d.version = v.version;

INSERT INTO structure (structure_id, from_version, until_version, position, nom, siret, typologie,
                       reseaux_porteurs, code_insee, date_maj, assured_date, status)
SELECT s ->> 'id', d.version, d.until_version, (p - 1)::int, s ->> 'nom', s ->> 'siret', s ->> 'typologie',
       ARRAY(SELECT jsonb_array_elements_text(coalesce(s -> 'reseaux_porteurs', '[]'))),
       s ->> 'code_insee', (s ->> 'date_maj')::date, (s ->> 'assured_date')::date, s ->> 'status'
  FROM _doc d, jsonb_array_elements(d.document -> 'structures') WITH ORDINALITY AS e(s, p);

INSERT INTO contact (structure_id, from_version, position, contact_id, label, email, mobile, email_enabled,
                     sms_enabled, is_generic_mailbox, quiet_start, quiet_end)
SELECT s ->> 'id', d.version, (cp - 1)::int, c ->> 'id', c ->> 'label', c ->> 'email', c ->> 'mobile',
       coalesce((c -> 'channels_enabled' ->> 'email')::boolean, false),
       coalesce((c -> 'channels_enabled' ->> 'sms')::boolean, false),
       coalesce((c ->> 'is_generic_mailbox')::boolean, false),
       (c -> 'quiet_hours' ->> 'start')::time, (c -> 'quiet_hours' ->> 'end')::time
  FROM _doc d, jsonb_array_elements(d.document -> 'structures') AS s,
       jsonb_array_elements(coalesce(s -> 'contacts', '[]')) WITH ORDINALITY AS e(c, cp);

INSERT INTO offer (offer_id, from_version, until_version, position, structure_id, nom, description, type,
                   thematiques, modes_mobilisation, mobilisable_par, conditions_acces, priority,
                   mandatory_stages, max_new_assignments_per_week, date_maj, suspension_date, status)
SELECT o ->> 'id', d.version, d.until_version, (p - 1)::int, o ->> 'structure_id', o ->> 'nom',
       o ->> 'description', o ->> 'type',
       ARRAY(SELECT jsonb_array_elements_text(coalesce(o -> 'thematiques', '[]'))),
       ARRAY(SELECT jsonb_array_elements_text(coalesce(o -> 'modes_mobilisation', '[]'))),
       ARRAY(SELECT jsonb_array_elements_text(coalesce(o -> 'mobilisable_par', '[]'))),
       o ->> 'conditions_acces', coalesce((o ->> 'priority')::int, 0),
       ARRAY(SELECT jsonb_array_elements_text(coalesce(o -> 'mandatory_stages', '[]'))),
       (o ->> 'max_new_assignments_per_week')::int, (o ->> 'date_maj')::date, (o ->> 'suspension_date')::date,
       o ->> 'status'
  FROM _doc d, jsonb_array_elements(coalesce(d.document -> 'offers', '[]')) WITH ORDINALITY AS e(o, p);

-- A JSON list or null → a text[] or NULL (NULL = no constraint, unlike an empty list).
CREATE FUNCTION pg_temp.text_array(value jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN NULL
                ELSE ARRAY(SELECT jsonb_array_elements_text(value)) END
$$;

INSERT INTO offer_eligibility (offer_id, from_version, stages, parc, landlord_types, landlord_siren_in, debt_min,
                               debt_max, months_of_rent_min, resources_max, allocataire, compositions,
                               children_min, requires_surendettement, valid_from, valid_to)
SELECT o ->> 'id', d.version, pg_temp.text_array(el -> 'stages'), el ->> 'parc',
       pg_temp.text_array(el -> 'landlord_types'), pg_temp.text_array(el -> 'landlord_siren_in'),
       (el ->> 'debt_min')::numeric, (el ->> 'debt_max')::numeric, (el ->> 'months_of_rent_min')::numeric,
       (el ->> 'resources_max')::numeric, el ->> 'allocataire', pg_temp.text_array(el -> 'compositions'),
       (el ->> 'children_min')::int, coalesce((el ->> 'requires_surendettement')::boolean, false),
       (el ->> 'valid_from')::date, (el ->> 'valid_to')::date
  FROM _doc d, jsonb_array_elements(coalesce(d.document -> 'offers', '[]')) AS o,
       LATERAL (SELECT coalesce(o -> 'eligibility', '{}'::jsonb) AS el) AS x;

INSERT INTO offer_zone (offer_id, from_version, position, kind, code, excluded)
SELECT o ->> 'id', d.version, (zp - 1)::int, z ->> 'kind', z ->> 'code', false
  FROM _doc d, jsonb_array_elements(coalesce(d.document -> 'offers', '[]')) AS o,
       jsonb_array_elements(o -> 'zone' -> 'include') WITH ORDINALITY AS e(z, zp);

INSERT INTO offer_zone (offer_id, from_version, position, kind, code, excluded)
SELECT o ->> 'id', d.version,
       (jsonb_array_length(o -> 'zone' -> 'include') + zp - 1)::int, 'COMMUNE', x.code, true
  FROM _doc d, jsonb_array_elements(coalesce(d.document -> 'offers', '[]')) AS o,
       jsonb_array_elements_text(coalesce(o -> 'zone' -> 'exclude_communes', '[]')) WITH ORDINALITY AS x(code, zp);

ALTER TABLE referential_version DROP COLUMN document;

-- Assignments: where they come from, how their status last changed, and the case's correlation id
-- (kept by the events orientation emits about them, e.g. an expiry).
ALTER TABLE assignment
    ADD COLUMN origin            text NOT NULL DEFAULT 'MATCHING' CHECK (origin IN ('MATCHING', 'OVERRIDE')),
    ADD COLUMN status_reason     text,
    ADD COLUMN status_by         text,
    ADD COLUMN status_changed_at timestamptz,
    ADD COLUMN removed_by_ccapex boolean NOT NULL DEFAULT false,
    ADD COLUMN correlation_id    uuid,
    ADD CONSTRAINT assignment_status_known
        CHECK (status IN ('OUVERTE', 'ACCEPTEE', 'REFUSEE', 'EXPIREE', 'CLOTUREE'));
-- An assignment the CCAPEX added answers no notification.
ALTER TABLE assignment ALTER COLUMN notification_id DROP NOT NULL;
CREATE INDEX assignment_by_procedure ON assignment (procedure_id);
CREATE INDEX assignment_open_since ON assignment (created_at) WHERE status = 'OUVERTE';

-- Every status an assignment went through, its creation included, with who changed it and why.
CREATE TABLE assignment_status_history (
    id            bigserial PRIMARY KEY,
    assignment_id uuid        NOT NULL REFERENCES assignment,
    from_status   text,
    to_status     text        NOT NULL,
    reason        text,
    actor         text        NOT NULL,                 -- PARTNER | CCAPEX | SYSTEM | ORIENTATION
    override      text CHECK (override IN ('ADD', 'REMOVE')),
    event_id      uuid,                                 -- the assignment.status or decision event
    changed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assignment_status_history_by_assignment ON assignment_status_history (assignment_id, id);
INSERT INTO assignment_status_history (assignment_id, from_status, to_status, actor, changed_at)
SELECT assignment_id, NULL, 'OUVERTE', 'ORIENTATION', created_at FROM assignment;

-- The CCAPEX's last word on a (procedure, structure): REMOVE keeps the structure out of every later
-- matching of the procedure, ADD lifts that. Never written by matching.
CREATE TABLE structure_override (
    procedure_id uuid        NOT NULL,
    structure_id text        NOT NULL,
    override     text        NOT NULL CHECK (override IN ('ADD', 'REMOVE')),
    event_id     uuid        NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (procedure_id, structure_id)
);

-- assignment.status events that were not applied (unknown assignment, transition not allowed…): kept
-- for ops with the reason, instead of blocking the partition or vanishing.
CREATE TABLE assignment_status_refused (
    event_id         uuid PRIMARY KEY,
    procedure_id     uuid        NOT NULL,
    assignment_id    uuid,
    structure_id     text        NOT NULL,
    requested_status text        NOT NULL,
    actor            text        NOT NULL,
    override         text,
    current_status   text,
    refusal          text        NOT NULL,
    detail           text        NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now()
);
