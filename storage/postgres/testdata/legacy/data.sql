-- The data storagetest.CheckUpgraded expects, as the PostgreSQL backend
-- stored it before migrations were per aggregate.
INSERT INTO accounts VALUES ('example.org', 'alice', to_timestamp(1700000000)), ('example.org', 'bob', to_timestamp(1700000001));
INSERT INTO credentials VALUES
	('example.org', 'alice', 'SHA-1', '\x01', 4096, '\x02', '\x03'),
	('example.org', 'alice', 'SHA-256', '\x11', 5000, '\x12', '\x13');
INSERT INTO roster_versions VALUES ('example.org', 'alice', 5);
INSERT INTO roster_items VALUES
	('example.org', 'alice', 'a@example.net', 'A', ARRAY['Friends', 'Work'], 'both', false, false, 3),
	('example.org', 'alice', 'b@example.net', '', '{}', 'none', true, true, 5);
INSERT INTO roster_removed VALUES ('example.org', 'alice', 'c@example.net', 4);
INSERT INTO subscription_requests (host, username, contact, stanza) VALUES
	('example.org', 'alice', 'e@example.net', convert_to('<presence from=''e''/>', 'UTF8')),
	('example.org', 'alice', 'd@example.net', convert_to('<presence from=''d''/>', 'UTF8'));
INSERT INTO offline_messages (host, username, stanza, stored) VALUES
	('example.org', 'alice', convert_to('<message>1</message>', 'UTF8'), to_timestamp(1700000000.123)),
	('example.org', 'alice', convert_to('<message>gone</message>', 'UTF8'), to_timestamp(1700000000.200)),
	('example.org', 'alice', convert_to('<message>2</message>', 'UTF8'), to_timestamp(1700000000.456));
DELETE FROM offline_messages WHERE stanza = convert_to('<message>gone</message>', 'UTF8');
INSERT INTO blocklist VALUES ('example.org', 'alice', 'spam@example.net'), ('example.org', 'alice', 'troll@example.com');
INSERT INTO documents VALUES ('example.org', 'alice', 'vcard', convert_to('<vCard xmlns=''vcard-temp''/>', 'UTF8'));
INSERT INTO last_activity VALUES ('example.org', 'alice', to_timestamp(1700000000.789), 'gone');
