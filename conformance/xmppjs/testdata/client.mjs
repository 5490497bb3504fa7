// Logs in to an XMPP server with xmpp.js (@xmpp/client) and reports what
// happens as JSON lines on stdout, for conformance/xmppjs:
//   {"event":"online","jid":"...","mechanism":"..."}
//   {"event":"message","from":"...","to":"...","type":"...","body":"..."}
//   {"event":"error","error":"..."}
//   {"event":"close-error","error":"..."}  an error once it is closing the stream
// It sends one chat message when --send-to is given, and waits for one
// message when --expect-from is given, then closes the stream.
//
// The service may be an XMPP over WebSocket endpoint (RFC 7395), ws:// or
// wss://, which needs a Node with a global WebSocket (Node 22, or Node 20
// with --experimental-websocket).
//
// usage: node client.mjs --service xmpp[s]://127.0.0.1:5222|wss://…/xmpp-websocket --domain localhost
//          --username alice --password pw --resource r --mechanism SCRAM-SHA-1
//          [--send-to JID --body TEXT] [--expect-from JID]
import { parseArgs } from "node:util";
import { client, xml } from "@xmpp/client";
import ConnectionTLS from "@xmpp/tls/lib/Connection.js";

const { values: opt } = parseArgs({
  options: {
    service: { type: "string" },
    domain: { type: "string" },
    username: { type: "string" },
    password: { type: "string" },
    resource: { type: "string" },
    mechanism: { type: "string" },
    "send-to": { type: "string" },
    body: { type: "string" },
    "expect-from": { type: "string" },
  },
});

const report = (o) => process.stdout.write(JSON.stringify(o) + "\n");
let used = "";

const xmpp = client({
  service: opt.service,
  domain: opt.domain,
  resource: opt.resource,
  // Force the mechanism under test instead of xmpp.js's own preference.
  credentials: async (authenticate, mechanisms) => {
    if (!mechanisms.includes(opt.mechanism)) {
      throw new Error(`server does not offer ${opt.mechanism} (offers ${mechanisms})`);
    }
    used = opt.mechanism;
    await authenticate({ username: opt.username, password: opt.password }, opt.mechanism);
  },
});

// Direct TLS (XEP-0368): xmpp.js takes the TLS server name (SNI, and the
// name the certificate is checked against) from the host of the xmpps://
// URL. XEP-0368 wants the XMPP domain, which is what matters when the URL
// names an address, such as 127.0.0.2 for a server whose domain is
// localhost: this transport connects to the URL's host and port, and asks
// TLS for --domain.
class DirectTLS extends ConnectionTLS {
  socketParameters(service) {
    const params = super.socketParameters(service);
    return params && { ...params, servername: opt.domain };
  }
}
const tlsTransport = xmpp.transports.indexOf(ConnectionTLS);
if (tlsTransport < 0) {
  report({ event: "error", error: "xmpp.js has no direct TLS transport to adjust" });
  process.exit(1);
}
xmpp.transports[tlsTransport] = DirectTLS;

// WebSocket over TLS: likewise, Node's WebSocket (undici) checks the
// certificate against the URL's host. Its connections go through undici's
// global dispatcher (set up by a first fetch), which is replaced by one
// that asks TLS for --domain.
if (opt.service.startsWith("wss://")) {
  if (typeof WebSocket !== "function") {
    report({ event: "error", error: "this Node has no global WebSocket (Node 20 needs --experimental-websocket)" });
    process.exit(1);
  }
  const dispatcher = Symbol.for("undici.globalDispatcher.1");
  await fetch("data:,");
  const Agent = globalThis[dispatcher]?.constructor;
  if (!Agent) {
    report({ event: "error", error: "Node's fetch set up no global dispatcher to adjust" });
    process.exit(1);
  }
  globalThis[dispatcher] = new Agent({ connect: { servername: opt.domain } });
}

let closing = false;
const done = (code) => {
  closing = true;
  xmpp.stop().finally(() => process.exit(code));
};

// An error once the exchange is over and the client closes its stream
// (such as a connection reset under its TLS close_notify) is reported
// apart: the test decides what it means.
xmpp.on("error", (err) => {
  const error = String(err && (err.condition || err.message) || err);
  if (closing) {
    report({ event: "close-error", error });
    return;
  }
  report({ event: "error", error });
  process.exit(1);
});

let waiting = Boolean(opt["expect-from"]);
xmpp.on("stanza", (st) => {
  if (!st.is("message") || st.attrs.type === "error") return;
  report({
    event: "message",
    from: st.attrs.from,
    to: st.attrs.to,
    type: st.attrs.type || "",
    body: st.getChildText("body") || "",
  });
  if (waiting && st.attrs.from === opt["expect-from"]) {
    waiting = false;
    done(0);
  }
});

xmpp.on("online", async (address) => {
  report({ event: "online", jid: address.toString(), mechanism: used });
  if (opt["send-to"]) {
    await xmpp.send(
      xml("message", { to: opt["send-to"], type: "chat", id: "xmppjs-1" }, xml("body", {}, opt.body)),
    );
  }
  if (!waiting) done(0);
});

xmpp.start().catch((err) => {
  report({ event: "error", error: String(err && (err.condition || err.message) || err) });
  process.exit(1);
});
