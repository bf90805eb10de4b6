-- Why an alert's structure was asked (codes of services/notifier/domain/alerts.py assignment_reasons:
-- MANDATORY, STAGE, ZONE, PARC, BAILLEUR), from the decision's matched rules; empty for alerts recorded before.
ALTER TABLE alert
    ADD COLUMN reasons jsonb NOT NULL DEFAULT '[]';
