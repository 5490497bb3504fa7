-- Per-account documents (vCard-temp, private XML storage); issue 4's
-- migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE).
-- COLLATE "C" keeps ordering byte-wise, as in Go, whatever the database locale.

-- Small opaque documents under a key ("vcard", "private {ns} local").
CREATE TABLE documents (
	host     text COLLATE "C" NOT NULL,
	username text COLLATE "C" NOT NULL,
	key      text COLLATE "C" NOT NULL,
	doc      bytea NOT NULL,
	PRIMARY KEY (host, username, key),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
