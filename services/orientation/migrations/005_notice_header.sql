-- What an alert would show of a procedure's latest notice that orientation did not orient (a late notice, a
-- clôture): reference, stage, urgency, commune, earliest expulsion date — never the household. A CCAPEX ADD on
-- a procedure without any decision announces the added structure from it (services/orientation/lifecycle.py);
-- an oriented notice's header is its decision's (table decision).
CREATE TABLE notice_header (
    procedure_id    uuid PRIMARY KEY,
    notification_id uuid        NOT NULL,
    header          jsonb       NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
