-- HTTP file upload (XEP-0363): the slots handed out, one row each,
-- recorded when the slot is requested so that it counts against the
-- account's quota at once; the files live outside the database, under
-- the id. An account's usage is a sum over uploads_account, the slots to
-- expire the front of uploads_created. Everything hangs off accounts and
-- goes with it (ON DELETE CASCADE; DeleteAccount removes the rows first).
-- COLLATE "C" keeps ordering byte-wise.
CREATE TABLE uploads (
	id           text COLLATE "C" PRIMARY KEY, -- random, unique across hosts
	host         text COLLATE "C" NOT NULL,
	username     text COLLATE "C" NOT NULL,
	name         text NOT NULL, -- the file name as the client gave it
	size         bigint NOT NULL CHECK (size >= 0),
	content_type text NOT NULL, -- '' for none
	created      timestamptz NOT NULL,
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
CREATE INDEX uploads_account ON uploads (host, username, created);
CREATE INDEX uploads_created ON uploads (created);
