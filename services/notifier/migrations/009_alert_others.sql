-- The other structures assigned the case when the alert was recorded (structure ids; their référentiel
-- names are read at sending time), so that partners can coordinate; empty for alerts recorded before.
ALTER TABLE alert
    ADD COLUMN others jsonb NOT NULL DEFAULT '[]';
