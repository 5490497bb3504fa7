-- The message archive (XEP-0313). One table for every account: id is the
-- archiver's ID (Unix microseconds made unique, the XEP-0359 stanza-id),
-- unique in the server; queries page through an account's messages by
-- archive_account, or those exchanged with one contact by archive_with,
-- so that a page costs the same however big the archive grows. Start and
-- end times are ID bounds; retention deletes by the primary key's order.
-- Rows go with their account (ON DELETE CASCADE; DeleteAccount removes
-- them first). COLLATE "C" keeps ordering byte-wise.
CREATE TABLE archive (
	id            bigint PRIMARY KEY,
	host          text COLLATE "C" NOT NULL,
	username      text COLLATE "C" NOT NULL,
	with_jid      text COLLATE "C" NOT NULL, -- the other party's bare JID
	with_resource text COLLATE "C" NOT NULL, -- and its resourcepart, '' for none
	direction     smallint NOT NULL CHECK (direction IN (0, 1)), -- 0 incoming, 1 outgoing
	stanza        bytea NOT NULL,
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
CREATE INDEX archive_account ON archive (host, username, id);
CREATE INDEX archive_with ON archive (host, username, with_jid, id);
