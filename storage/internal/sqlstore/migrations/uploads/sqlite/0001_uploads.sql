-- HTTP file upload (XEP-0363): the slots handed out, one row each,
-- recorded when the slot is requested so that it counts against the
-- account's quota at once; the files live outside the database, under
-- the id. An account's usage is a sum over uploads_account, the slots to
-- expire the front of uploads_created. Everything hangs off accounts and
-- goes with it (ON DELETE CASCADE; Open turns foreign_keys on;
-- DeleteAccount removes the rows first).
CREATE TABLE uploads (
	id           TEXT PRIMARY KEY, -- random, unique across hosts
	host         TEXT NOT NULL,
	username     TEXT NOT NULL,
	name         TEXT NOT NULL, -- the file name as the client gave it
	size         INTEGER NOT NULL CHECK (size >= 0),
	content_type TEXT NOT NULL, -- '' for none
	created      INTEGER NOT NULL, -- Unix milliseconds
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX uploads_account ON uploads (host, username, created);
CREATE INDEX uploads_created ON uploads (created);
