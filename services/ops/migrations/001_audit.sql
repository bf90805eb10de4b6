-- Every read of personal data through prevex-ops: who, when, which query, which procedures it showed.
-- Append-only; it holds no personal data itself (the query is a reference or an id).
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    operator      text        NOT NULL,
    command       text        NOT NULL,
    query         text        NOT NULL,
    procedure_ids uuid[]      NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
