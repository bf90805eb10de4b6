-- A structure the CCAPEX removed from a case is told so (issue 14): the CCAPEX secretariat it may contact, by
-- its référentiel name and address (an organisation's, never a household's). Set only on a removal notice
-- (alert_key removed:<assignment>), which the dispatcher renders with the removal templates.
ALTER TABLE alert
    ADD COLUMN removal_secretariat text,
    ADD COLUMN removal_secretariat_email text;
