-- Last activity (XEP-0012); issue 4's migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE; Open
-- turns foreign_keys on).

CREATE TABLE last_activity (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	at       INTEGER NOT NULL, -- Unix milliseconds
	status   TEXT NOT NULL,
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
