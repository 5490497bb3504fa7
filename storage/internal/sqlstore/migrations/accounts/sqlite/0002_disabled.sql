-- Accounts an administrator disabled (XEP-0133 §4.3): kept, but refused at
-- login until re-enabled.
ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
