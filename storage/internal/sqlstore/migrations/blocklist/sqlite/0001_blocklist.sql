-- The blocklist (XEP-0191); issue 4's migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE; Open
-- turns foreign_keys on).

CREATE TABLE blocklist (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	jid      TEXT NOT NULL,
	PRIMARY KEY (host, username, jid),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
