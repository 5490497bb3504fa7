-- Offline messages (XEP-0160); issue 4's migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE; Open
-- turns foreign_keys on).

-- Offline messages. AUTOINCREMENT: ids are never reused, even after the
-- newest ones are deleted, so a stale "through" cannot reach new messages.
CREATE TABLE offline_messages (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	stanza   BLOB NOT NULL,
	stored   INTEGER NOT NULL, -- Unix milliseconds
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;
CREATE INDEX offline_messages_account ON offline_messages (host, username, id);
