-- The message archive (XEP-0313). One table for every account: id is the
-- archiver's ID (Unix microseconds made unique, the XEP-0359 stanza-id),
-- so it is the rowid and the table is kept in time order; queries page
-- through an account's messages by archive_account, or those exchanged
-- with one contact by archive_with, so that a page costs the same however
-- big the archive grows. Start and end times are ID bounds. Rows go with
-- their account (ON DELETE CASCADE; DeleteAccount removes them first).
CREATE TABLE archive (
	id            INTEGER PRIMARY KEY,
	host          TEXT NOT NULL,
	username      TEXT NOT NULL,
	with_jid      TEXT NOT NULL, -- the other party's bare JID
	with_resource TEXT NOT NULL, -- and its resourcepart, '' for none
	direction     INTEGER NOT NULL CHECK (direction IN (0, 1)), -- 0 incoming, 1 outgoing
	stanza        BLOB NOT NULL,
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;
CREATE INDEX archive_account ON archive (host, username, id);
CREATE INDEX archive_with ON archive (host, username, with_jid, id);
