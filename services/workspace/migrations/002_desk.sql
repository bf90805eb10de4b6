-- The CCAPEX secretariat's desk: its sessions carry a role, the procedures remember fallback F1.

-- A desk session: role (ccapex-admin / ccapex-viewer) and the token's name (who, in the audit log).
-- A partner's session has neither; a desk session's structure_id is 'CCAPEX' (not a référentiel id).
ALTER TABLE session ADD COLUMN role text, ADD COLUMN principal text;
ALTER TABLE session ADD CONSTRAINT session_desk_principal CHECK ((role IS NULL) = (principal IS NULL));

-- Whether orientation's last decision from a notice found no offer (fallback F1: the default referent).
ALTER TABLE procedure ADD COLUMN fallback_used boolean NOT NULL DEFAULT false;
CREATE INDEX procedure_fallback ON procedure (procedure_id) WHERE fallback_used AND closed_at IS NULL;

-- The desk's audit log filtered by structure.
CREATE INDEX audit_log_structure ON audit_log (structure_id, at);
CREATE INDEX audit_log_at ON audit_log (at);
