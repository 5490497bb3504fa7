-- Last activity (XEP-0012); issue 4's migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE).
-- COLLATE "C" keeps ordering byte-wise, as in Go, whatever the database locale.

CREATE TABLE last_activity (
	host     text COLLATE "C" NOT NULL,
	username text COLLATE "C" NOT NULL,
	at       timestamptz NOT NULL,
	status   text NOT NULL,
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
