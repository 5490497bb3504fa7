-- Per-account documents (vCard-temp, private XML storage); issue 4's
-- migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE; Open
-- turns foreign_keys on).

-- Small opaque documents under a key ("vcard", "private {ns} local"). A
-- rowid table: a vCard with a photo is too large a row for WITHOUT ROWID.
CREATE TABLE documents (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	key      TEXT NOT NULL,
	doc      BLOB NOT NULL,
	PRIMARY KEY (host, username, key),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;
