-- A "sortie de trêve" reminder (orientation's WINTER_TRUCE_END decision, docs/domain.md §7): its
-- alerts carry their own wording, so the alert remembers that it is one.
ALTER TABLE alert
    ADD COLUMN truce_end boolean NOT NULL DEFAULT false;
