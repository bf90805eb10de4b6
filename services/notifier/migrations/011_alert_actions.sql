-- What a partner acts on (issue 17), from orientation.decided 1.2: the names of the structure's offers the
-- case was oriented to, the day it is asked to answer by (orientation's escalation deadline), the
-- procedure's legal dates (hearing, end of the commandement's period), and for fallback F1 the offers that
-- came closest as [offer name, structure name, [exclusion codes]]. Empty or NULL for alerts recorded before.
ALTER TABLE alert
    ADD COLUMN offers jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN respond_by date,
    ADD COLUMN hearing_date date,
    ADD COLUMN commandement_deadline date,
    ADD COLUMN closest jsonb NOT NULL DEFAULT '[]';
