-- The blocklist (XEP-0191); issue 4's migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE).
-- COLLATE "C" keeps ordering byte-wise, as in Go, whatever the database locale.

CREATE TABLE blocklist (
	host     text COLLATE "C" NOT NULL,
	username text COLLATE "C" NOT NULL,
	jid      text COLLATE "C" NOT NULL,
	PRIMARY KEY (host, username, jid),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
