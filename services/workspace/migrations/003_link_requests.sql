-- A partner's request for a new link in place of an expired one (services/workspace/link_requests.py):
-- one row per request sent to the notifier; the assignment's latest one rate-limits the next.
-- Codes and ids only: nothing personal is stored here.
CREATE TABLE link_request (
    request_id     uuid PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    assignment_id  uuid        NOT NULL,
    structure_id   text        NOT NULL,
    requested_at   timestamptz NOT NULL
);
CREATE INDEX link_request_assignment ON link_request (assignment_id, requested_at DESC);
