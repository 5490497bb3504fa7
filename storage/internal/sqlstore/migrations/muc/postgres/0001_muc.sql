-- Multi-user chat (XEP-0045): the persistent rooms of each service, their
-- affiliations and their message archives (XEP-0313 for rooms). A room is
-- (service, name): its bare JID name@service. Its configuration and
-- subject are the muc module's encoding, opaque here. Affiliations and
-- archived messages go with their room (ON DELETE CASCADE; DeleteMUCRoom
-- removes the rows first). COLLATE "C" keeps ordering byte-wise.
CREATE TABLE muc_rooms (
	service text COLLATE "C" NOT NULL,
	name    text COLLATE "C" NOT NULL,
	config  bytea NOT NULL,
	created timestamptz NOT NULL,
	PRIMARY KEY (service, name)
);

-- A room's affiliation lists (XEP-0045 §5.2): one row per bare JID (or
-- domain) with an affiliation other than none, with the nickname it has
-- reserved (§7.12, '' for none) and the reason given (§9.1).
CREATE TABLE muc_affiliations (
	service     text COLLATE "C" NOT NULL,
	room        text COLLATE "C" NOT NULL,
	jid         text COLLATE "C" NOT NULL,
	affiliation text NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
	nick        text NOT NULL,
	reason      text NOT NULL,
	PRIMARY KEY (service, room, jid),
	FOREIGN KEY (service, room) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
);

-- The rooms' message archives, as the accounts' archive table: id is the
-- archiver's ID (Unix microseconds made unique, the XEP-0359 stanza-id
-- the room stamps), unique in the server; with_jid and with_resource are
-- the occupant's room JID the message was sent from (the room's bare JID
-- and the nickname). Queries page through a room's messages by
-- muc_archive_room, those of one occupant by muc_archive_with_resource,
-- those with one bare JID by muc_archive_with, so that a page costs the
-- same however big the archive grows. Start and end times are ID bounds;
-- retention deletes by the primary key's order.
CREATE TABLE muc_archive (
	id            bigint PRIMARY KEY,
	service       text COLLATE "C" NOT NULL,
	room          text COLLATE "C" NOT NULL,
	with_jid      text COLLATE "C" NOT NULL, -- the room's bare JID, as the message was sent from
	with_resource text COLLATE "C" NOT NULL, -- the sender's nickname, '' for none (the room itself)
	stanza        bytea NOT NULL,
	FOREIGN KEY (service, room) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
);
CREATE INDEX muc_archive_room ON muc_archive (service, room, id);
CREATE INDEX muc_archive_with ON muc_archive (service, room, with_jid, id);
CREATE INDEX muc_archive_with_resource ON muc_archive (service, room, with_jid, with_resource, id);
