package main

// The server requirements of XEP-0479 (XMPP Compliance Suites 2023,
// v0.1.0; its tables are identical to XEP-0459's), one row per provider
// specification, and the checks that prove each.
//
// A check is "PACKAGE TEST": a package directory relative to the
// repository root and a go test name, whose "/"-separated parts are
// matched one by one ("*" matches any one part); it stands for that test
// and every subtest below it. Transcript tests are
// "./conformance TestTranscripts/<file name without .txt>".
//
// Every row has checks, or says why not: notImplemented names the issue
// that will implement it (or says that no issue is filed yet). A row whose
// checks cover only part of the specification says so in partial.

type level int

const (
	server   level = iota // required at the Server level, so at the Advanced one too
	advanced              // required only of an Advanced Server
	ofNote                // not required: listed by XEP-0479 as a specification of note
)

func (l level) String() string {
	return [...]string{"Server", "Advanced Server", "Of note"}[l]
}

type requirement struct {
	category string // Core, Web, IM, Mobile, A/V
	level    level
	feature  string // the row of XEP-0479's table
	spec     string // one provider of that row
	note     string // a footnote of XEP-0479 that matters for a server

	checks         []string
	partial        string // why the checks prove only part of spec
	notImplemented string // "issue N", or notFiled and what it comes with
}

// Checks shared by several rows.
var (
	realClients = []string{
		"./conformance/realclients TestRealClients/sqlite",
		"./conformance/realclients TestRealClients/postgres",
		"./conformance/xmppjs TestXMPPJS/sqlite",
		"./conformance/profanity TestProfanity",
	}
	notFiled = "no issue yet"
)

// categories in the order of XEP-0479; A/V Calling is the fifth category of
// the XEP, with one server requirement.
var categories = []string{"Core", "Web", "IM", "Mobile", "A/V"}

var requirements = []requirement{
	// Core Compliance Suite (XEP-0479 §2.1).
	{
		category: "Core", level: server, feature: "Core features", spec: "RFC 6120 XMPP Core",
		note: "RFC 7622 is deliberately not listed (PRECIS vs stringprep)",
		checks: append([]string{
			"./conformance TestTranscripts/rfc6120-04-streams",
			"./conformance TestTranscripts/rfc6120-04-limits",
			"./conformance TestTranscripts/rfc6120-06-sasl",
			"./conformance TestTranscripts/rfc6120-07-bind",
			"./conformance TestTranscripts/rfc6120-08-stanzas",
			"./conformance TestTranscripts/rfc6120-13-timeouts",
			"./conformance TestTranscripts/xep-0199-ping",
			"./conformance TestTranscripts/rfc6120-06-sasl-throttle",
			"./conformance TestTranscripts/rfc6120-13-unauthenticated",
			"./conformance TestThrottleAnswers",
			"./conformance TestThrottleConcurrent",
			"./conformance TestFailedLoginLog",
			"./conformance TestStuckRecipient",
			"./stream TestReadHeader",
			"./stream TestNext",
			"./stream TestLimits",
			"./auth TestRFCVectors",
			"./auth TestSCRAMBadInput",
			"./auth TestUnknownUserIndistinguishable",
			"./auth TestPLAIN",
			"./server TestShutdown",
			// Server-to-server (federation).
			"./conformance TestTranscripts/rfc6120-s2s-streams",
			"./conformance TestTranscripts/rfc6120-s2s-stanzas",
			"./conformance TestTranscripts/rfc6120-s2s-outgoing",
			"./conformance TestTranscripts/rfc6120-s2s-timeouts",
			"./conformance TestTranscripts/xep-0220-dialback",
			"./conformance TestTranscripts/xep-0220-verify",
			"./s2s TestMessagesBothWays",
			"./s2s TestIMAcrossServers",
			"./s2s TestInboxSlowRecipient",
			"./s2s TestBackoff",
			"./s2s/resolve TestPriorityOrder",
			"./s2s/resolve TestWeightOrder",
			"./s2s/resolve TestNoService",
			"./s2s/resolve TestFallback",
			"./conformance/federation TestStarlingProsody",
			"./conformance/federation TestStarlingEjabberd",
		}, realClients...),
	},
	{
		category: "Core", level: server, feature: "TLS", spec: "RFC 7590 Use of TLS in XMPP",
		checks: []string{
			"./conformance TestTranscripts/rfc6120-04-streams",
			"./conformance TestTranscripts/rfc6120-06-sasl",
			"./conformance TestTLSVersions",
			"./conformance TestSNI",
			"./tlsconf TestTLSVersions",
			"./tlsconf TestSNISelectsHostCertificate",
			"./tlsconf TestReload",
			"./auth TestChannelBindingTLS13",
			"./auth TestChannelBindingTLS12",
			"./conformance/realclients TestRealClients/*/slixmpp/starttls",
			"./conformance/realclients TestRealClients/*/nbxmpp/starttls",
			"./conformance/xmppjs TestXMPPJS/sqlite/starttls",
			// Server-to-server: TLS required, certificates (RFC 7590 §3.1,
			// RFC 6125), SASL EXTERNAL (XEP-0178).
			"./conformance TestTranscripts/rfc6120-s2s-tls",
			"./conformance TestTranscripts/rfc6120-s2s-certificates",
			"./conformance TestTranscripts/xep-0178-external",
			"./s2s/peercert TestVerify",
			"./s2s TestDirectTLS",
		},
	},
	{
		category: "Core", level: advanced, feature: "Direct TLS", spec: "XEP-0368 SRV records for XMPP over TLS",
		note: "for a server: accepting direct TLS connections (the SRV records are the operator's DNS)",
		checks: []string{
			"./conformance TestDirectTLS",
			"./s2s TestDirectTLS",
			"./s2s/resolve TestDirectTLSFirst",
			"./conformance TestSNI",
			"./tlsconf TestALPN",
			"./conformance/realclients TestRealClients/*/slixmpp/directtls",
			"./conformance/realclients TestRealClients/*/nbxmpp/directtls",
			"./conformance/realclients TestRealClients/*/go-sendxmpp/directtls",
			"./conformance/xmppjs TestXMPPJS/sqlite/directtls",
		},
	},
	{
		category: "Core", level: server, feature: "Feature discovery", spec: "XEP-0030 Service Discovery",
		checks: []string{"./conformance TestTranscripts/xep-0030-disco"},
	},
	{
		category: "Core", level: advanced, feature: "Feature broadcasts", spec: "XEP-0115 Entity Capabilities",
		checks: []string{
			"./conformance TestTranscripts/xep-0115-caps",
			"./xep/disco TestVer",
			"./xep/disco TestCaps",
			"./xep/disco TestCapsFollowsFeatures",
			"./conformance TestTranscripts/xep-0115-caps-clients",
			"./caps TestXEPExamples",
			"./caps TestOneQueryPerVerAcrossSessions",
			"./caps TestForgedVer",
			"./caps TestCacheBounded",
			"./caps TestRemoteEntity",
			"./caps TestRemoteBounded",
		},
	},
	{
		category: "Core", level: server, feature: "Server extensibility", spec: "XEP-0114 Jabber Component Protocol",
		notImplemented: notFiled,
	},
	{
		category: "Core", level: advanced, feature: "Event publishing", spec: "XEP-0163 Personal Eventing Protocol",
		note: "full pubsub on account JIDs is desirable and expected by future suites; beyond XEP-0163, collection nodes and publisher affiliations are not done",
		checks: []string{
			"./conformance TestTranscripts/xep-0163-pep",
			"./conformance/imclients TestIMClients/*/*/avatar",
			"./xep/pep TestPreconditions",
			"./xep/pep TestPublishNotifiesAndAccess",
			"./xep/pep TestErrors",
			"./xep/pep TestGrantedSendsLastItems",
			"./xep/pep TestBlockedNotNotified",
			"./xep/pep TestRemoteContacts",
			"./xep/pep TestSubscribe",
			"./xep/pep TestSubscribeAccessModels",
			"./xep/pep TestUnsubscribe",
			"./xep/pep TestSubscriptionLists",
			"./xep/pep TestSubscriberNotifications",
			"./conformance TestTranscripts/xep-0163-pep-s2s",
			"./conformance/profanity TestProfanityOMEMO",
		},
	},

	// Web Compliance Suite (§2.2). The "only one of the providers" note is
	// on the client columns only: a server needs both. Connection
	// Mechanism Discovery (XEP-0156) is not required of servers.
	{
		category: "Web", level: server, feature: "Web connection mechanisms", spec: "RFC 7395 XMPP over WebSocket",
		note: "may be provided by a component or module; a server needs both providers",
		checks: []string{
			"./conformance TestTranscripts/rfc7395-websocket",
			"./websocket TestLoginAndChat",
			"./websocket TestLargeStanzas",
			"./websocket TestBadInput",
			"./websocket TestUpgradeRefused",
			"./websocket TestEncryptionBehindProxy",
			"./websocket TestServerCloses",
			"./websocket TestWebSocketPing",
			"./websocket TestHostMeta",
			"./conformance/xmppjs TestXMPPJS/sqlite/websocket",
			"./conformance/browser TestBrowser/sqlite/websocket",
		},
	},
	{
		category: "Web", level: server, feature: "Web connection mechanisms", spec: "XEP-0206 XMPP over BOSH (XEP-0124 BOSH)",
		note: "may be provided by a component or module; a server needs both providers",
		checks: []string{
			"./conformance TestTranscripts/xep-0124-bosh",
			"./conformance TestTranscripts/xep-0206-bosh",
			"./bosh TestLoginChatTerminate",
			"./bosh TestVersion",
			"./bosh TestRIDs",
			"./bosh TestRepeatedRID",
			"./bosh TestOldRID",
			"./bosh TestRIDGap",
			"./bosh TestAcknowledgements",
			"./bosh TestPause",
			"./bosh TestOveractivity",
			"./bosh TestPolling",
			"./bosh TestPollingCreation",
			"./bosh TestHoldAndWait",
			"./bosh TestBadRequests",
			"./bosh TestInactivity",
			"./bosh TestCORS",
			"./bosh TestStreamError",
			"./websocket TestHostMeta",
			"./conformance/browser TestBrowser/sqlite/bosh",
		},
	},

	// IM Compliance Suite (§2.3).
	{
		category: "IM", level: server, feature: "Core features", spec: "RFC 6121 XMPP IM",
		checks: append([]string{
			"./conformance TestTranscripts/rfc6120-08-stanzas",
			"./conformance TestTranscripts/rfc6121-02-roster",
			"./conformance TestTranscripts/rfc6121-03-subscriptions",
			"./conformance TestTranscripts/rfc6121-04-presence",
			"./conformance TestTranscripts/rfc6121-08-priority",
			"./conformance TestTranscripts/xep-0160-offline",
			"./roster TestOutboundSubscribe",
			"./roster TestOutboundUnsubscribe",
			"./roster TestOutboundSubscribed",
			"./roster TestOutboundUnsubscribed",
			"./roster TestInboundSubscribe",
			"./roster TestInboundUnsubscribe",
			"./roster TestInboundSubscribed",
			"./roster TestInboundUnsubscribed",
			"./conformance/imclients TestIMClients/*/*/roster",
			"./conformance/imclients TestIMClients/*/*/subscription",
			"./conformance/imclients TestIMClients/*/*/presence",
			"./conformance/imclients TestIMClients/*/*/offline",
			"./conformance/imclients TestIMClients/*/*/offline-restart",
			// Subscriptions, presence and messages with contacts on
			// Prosody and ejabberd, both ways.
			"./conformance/federation TestStarlingProsody",
			"./conformance/federation TestStarlingEjabberd",
		}, realClients...),
	},
	{
		category: "IM", level: server, feature: "vcard-temp", spec: "XEP-0054 vcard-temp",
		checks: []string{"./conformance TestTranscripts/xep-0054-vcard", "./xep/vcard TestVCard", "./conformance/imclients TestIMClients/*/*/vcard"},
	},
	{
		category: "IM", level: server, feature: "Outbound message synchronization", spec: "XEP-0280 Message Carbons",
		checks: []string{
			"./conformance TestTranscripts/xep-0280-carbons",
			"./conformance TestTranscripts/xep-0030-disco",
			"./conformance TestCarbonsTurnedOff",
			"./xep/carbons TestEligible",
			"./xep/carbons TestWrapper",
			"./xep/carbons TestWithoutPrivate",
			"./xep/carbons TestForgottenAtEnd",
			"./xep/carbons TestConcurrent",
			"./conformance/imclients TestIMClients/*/*/carbons",
		},
	},
	{
		category: "IM", level: server, feature: "Group chat", spec: "XEP-0045 Multi-User Chat",
		note: "may be provided by a component; future suites may require XEP-0369 MIX instead",
		checks: []string{
			"./conformance TestTranscripts/xep-0045-muc",
			"./xep/muc TestPersistentRoom",
			"./xep/muc TestArchivedHistory",
			"./xep/muc TestHistory",
			"./xep/muc TestFloodLimits",
			"./xep/muc TestConcurrentRoom",
			"./xep/muc TestNewcomerOrder",
			"./conformance/imclients TestIMClients/*/*/muc",
			"./conformance/profanity TestProfanityMUC",
			"./conformance/browser TestBrowser/sqlite/websocket",
			"./conformance/federation TestMUCFederation",
		},
	},
	{
		category: "IM", level: server, feature: "Group chat", spec: "XEP-0249 Direct MUC Invitations",
		note:   "an invitation is a message from client to client, which the server routes as any other",
		checks: []string{"./conformance TestTranscripts/xep-0045-muc"},
	},
	{
		category: "IM", level: server, feature: "File upload", spec: "XEP-0363 HTTP File Upload",
		note: "may be provided by a component; Starling serves it on its own HTTPS listener",
		checks: []string{
			"./conformance TestTranscripts/xep-0363-upload",
			"./conformance TestTranscripts/xep-0363-upload-daily",
			"./xep/upload TestUploadDownload",
			"./xep/upload TestUploadRefusals",
			"./xep/upload TestUploadDeletedWithAccount",
			"./xep/upload TestUploadOtherHost",
			"./xep/upload TestPutToken",
			"./xep/upload TestPutSlowLoris",
			"./xep/upload TestPutTrickle",
			"./xep/upload TestExpire",
			"./conformance/imclients TestIMClients/*/*/upload",
			"./conformance/browser TestBrowser/sqlite/websocket/upload",
			"./conformance/browser TestBrowser/sqlite/bosh/upload",
		},
	},
	{
		category: "IM", level: advanced, feature: "User avatar compatibility", spec: "XEP-0398 User Avatar to vCard-Based Avatars Conversion",
		checks: []string{
			"./conformance TestTranscripts/xep-0398-avatar-conversion",
			"./xep/pep TestAvatarConversion",
			"./conformance/imclients TestIMClients/*/*/vcard-avatar",
			"./conformance/browser TestBrowser/sqlite/websocket",
		},
	},
	{
		category: "IM", level: advanced, feature: "User avatar compatibility", spec: "XEP-0153 vCard-Based Avatars",
		checks: []string{
			"./conformance TestTranscripts/xep-0054-vcard",
			"./xep/vcard TestVCard",
			"./conformance TestTranscripts/xep-0398-avatar-conversion",
		},
	},
	{
		category: "IM", level: advanced, feature: "User blocking", spec: "XEP-0191 Blocking Command",
		checks: []string{
			"./conformance TestTranscripts/xep-0191-blocking",
			"./xep/blocking TestMatches",
			"./xep/blocking TestBlocked",
			"./xep/blocking TestCommands",
			"./xep/blocking TestErrors",
			"./conformance/imclients TestIMClients/*/*/blocking",
		},
	},
	{
		category: "IM", level: advanced, feature: "Advanced group chat", spec: "XEP-0048 Bookmarks",
		note: "may be provided by a component",
		checks: []string{
			"./conformance TestTranscripts/xep-0049-private",
			"./xep/private TestPrivate",
			"./conformance TestTranscripts/xep-0402-bookmarks",
			"./xep/pep TestBookmarksSync",
			"./conformance/imclients TestIMClients/*/*/bookmarks",
		},
	},
	{
		category: "IM", level: advanced, feature: "Advanced group chat", spec: "XEP-0313 Message Archive Management (MUC archives)",
		note: "history requested from the room's archive, not the account's",
		checks: []string{
			"./conformance TestTranscripts/xep-0045-muc",
			"./xep/muc TestArchivedHistory",
			"./archive TestParseQuery",
			"./conformance/imclients TestIMClients/*/*/muc",
		},
	},
	{
		category: "IM", level: advanced, feature: "Advanced group chat", spec: "XEP-0402 PEP Native Bookmarks",
		note: "clients use it only when the server exposes urn:xmpp:bookmarks:1#compat, else XEP-0049",
		checks: []string{
			"./conformance TestTranscripts/xep-0402-bookmarks",
			"./xep/pep TestBookmarksSync",
			"./xep/pep TestBookmarksMigrate",
			"./conformance/imclients TestIMClients/*/*/bookmarks",
			"./conformance/browser TestBrowser/sqlite/websocket",
		},
	},
	{
		category: "IM", level: advanced, feature: "Advanced group chat", spec: "XEP-0410 MUC Self-Ping",
		checks: []string{"./conformance TestTranscripts/xep-0045-muc"},
	},
	{
		category: "IM", level: advanced, feature: "Persistent storage of private data via PubSub", spec: "XEP-0223 Persistent Storage of Private Data via PubSub",
		checks: []string{
			"./conformance TestTranscripts/xep-0402-bookmarks",
			"./conformance TestTranscripts/xep-0163-pep",
		},
	},
	{
		category: "IM", level: advanced, feature: "Private XML storage", spec: "XEP-0049 Private XML Storage",
		note:   "only recommended for legacy bookmarks",
		checks: []string{"./conformance TestTranscripts/xep-0049-private", "./xep/private TestPrivate"},
	},
	{
		category: "IM", level: advanced, feature: "Stream management", spec: "XEP-0198 Stream Management",
		checks: []string{
			"./conformance TestTranscripts/xep-0198-sm",
			"./c2s TestAckWraps",
			"./c2s TestSentCountsAfterEnabled",
		},
	},
	{
		category: "IM", level: advanced, feature: "History storage / retrieval", spec: "XEP-0313 Message Archive Management",
		checks: []string{
			"./conformance TestTranscripts/xep-0313-mam",
			"./xep/mam TestArchived",
			"./xep/mam TestRouting",
			"./xep/mam TestPrefs",
			"./archive TestParseQuery",
			"./archive TestWriter",
			"./storage/sqlite TestStore/Archive",
			"./storage/postgres TestStore/Archive",
		},
	},

	// Mobile Compliance Suite (§2.4).
	{
		category: "Mobile", level: server, feature: "Stream management", spec: "XEP-0198 Stream Management",
		checks: []string{
			"./conformance TestTranscripts/xep-0198-sm",
			"./c2s TestAckWraps",
			"./c2s TestSentCountsAfterEnabled",
		},
	},
	{
		category: "Mobile", level: server, feature: "Client state indication", spec: "XEP-0352 Client State Indication",
		checks: []string{
			"./conformance TestTranscripts/xep-0352-csi",
			"./conformance TestCSITurnedOff",
			"./xep/csi TestClassify",
			"./xep/csi TestInactiveHoldsAndCollapses",
			"./xep/csi TestUrgentReleasesFirst",
			"./xep/csi TestBounded",
			"./xep/csi TestConcurrentOrder",
		},
	},
	{
		category: "Mobile", level: advanced, feature: "Third-party push notifications", spec: "XEP-0357 Push Notifications",
		note: "may be provided by a component",
		checks: []string{
			"./conformance TestTranscripts/xep-0357-push",
			"./conformance TestTranscripts/xep-0357-push-sm",
			"./conformance TestTranscripts/xep-0030-disco",
			"./conformance/federation TestPushToProsody",
			"./xep/push TestEnableDisable",
			"./xep/push TestBadRequests",
			"./xep/push TestOffline",
			"./xep/push TestDetached",
			"./xep/push TestRateLimit",
			"./xep/push TestErrors",
			"./xep/push TestImportant",
			"./storage/sqlite TestStore/Push",
			"./storage/postgres TestStore/Push",
		},
	},

	// A/V Calling Compliance Suite (§2.5): its only server row.
	{
		category: "A/V", level: server, feature: "STUN/TURN server discovery", spec: "XEP-0215 External Service Discovery",
		checks: []string{
			"./conformance TestTranscripts/xep-0215-extdisco",
			"./xep/extdisco TestRequests",
			"./xep/extdisco TestCredentials",
			"./xep/extdisco TestStaticCredentials",
			"./xep/extdisco TestDiff",
			"./xep/extdisco TestPush",
			"./conformance TestExtdiscoPushOnReload",
			"./xep/extdisco TestValidate",
			"./conformance/turn TestCoturn",
		},
	},

	// Specifications of note for public IM networks (§2.3), not required.
	{
		category: "IM", level: ofNote, feature: "In-band registration", spec: "XEP-0077 In-Band Registration",
		note: "should be supported but off in the default configuration",
		checks: []string{
			"./conformance TestTranscripts/xep-0077-register",
			"./conformance TestTranscripts/xep-0077-register-disabled",
		},
	},
	{
		category: "IM", level: ofNote, feature: "Contact addresses", spec: "XEP-0157 Contact Addresses for XMPP Services",
		checks: []string{
			"./conformance TestTranscripts/xep-0157-contact",
			"./xep/contactinfo TestForm",
			"./xep/contactinfo TestValidate",
			"./xep/disco TestServerForms",
		},
	},
}
