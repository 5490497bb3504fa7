-- Multi-user chat (XEP-0045): the persistent rooms of each service, their
-- affiliations and their message archives (XEP-0313 for rooms). A room is
-- (service, name): its bare JID name@service. Its configuration and
-- subject are the muc module's encoding, opaque here. Affiliations and
-- archived messages go with their room (ON DELETE CASCADE; Open turns
-- foreign_keys on; DeleteMUCRoom removes the rows first).
CREATE TABLE muc_rooms (
	service TEXT NOT NULL,
	name    TEXT NOT NULL,
	config  BLOB NOT NULL,
	created INTEGER NOT NULL, -- Unix seconds
	PRIMARY KEY (service, name)
) STRICT, WITHOUT ROWID;

-- A room's affiliation lists (XEP-0045 §5.2): one row per bare JID (or
-- domain) with an affiliation other than none, with the nickname it has
-- reserved (§7.12, '' for none) and the reason given (§9.1).
CREATE TABLE muc_affiliations (
	service     TEXT NOT NULL,
	room        TEXT NOT NULL,
	jid         TEXT NOT NULL,
	affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
	nick        TEXT NOT NULL,
	reason      TEXT NOT NULL,
	PRIMARY KEY (service, room, jid),
	FOREIGN KEY (service, room) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The rooms' message archives, as the accounts' archive table: id is the
-- archiver's ID (Unix microseconds made unique, the XEP-0359 stanza-id
-- the room stamps), so it is the rowid and the table is kept in time
-- order; with_jid and with_resource are the occupant's room JID the
-- message was sent from (the room's bare JID and the nickname). Queries
-- page through a room's messages by muc_archive_room, those of one
-- occupant by muc_archive_with_resource, those with one bare JID by
-- muc_archive_with, so that a page costs the same however big the archive
-- grows. Start and end times are ID bounds; retention deletes by the
-- primary key's order.
CREATE TABLE muc_archive (
	id            INTEGER PRIMARY KEY,
	service       TEXT NOT NULL,
	room          TEXT NOT NULL,
	with_jid      TEXT NOT NULL, -- the room's bare JID, as the message was sent from
	with_resource TEXT NOT NULL, -- the sender's nickname, '' for none (the room itself)
	stanza        BLOB NOT NULL,
	FOREIGN KEY (service, room) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX muc_archive_room ON muc_archive (service, room, id);
CREATE INDEX muc_archive_with ON muc_archive (service, room, with_jid, id);
CREATE INDEX muc_archive_with_resource ON muc_archive (service, room, with_jid, with_resource, id);
