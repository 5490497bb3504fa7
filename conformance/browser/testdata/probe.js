// The probe conformance/browser's checks read (a classic script, not a
// module, so that the driver can inject it too). window.starlingProbe
// (converse) registers a Converse plugin, "starling-probe", which records
// in window.starling what the driver (driver.mjs) waits for: the
// connection's state, the bound JID, the transport Strophe.js really used
// (websocket or bosh) and its URL, the MAM queries Converse sends and
// their answers, and the PEP publishes it sends (window.starling.
// publishes: node, rooms bookmarked, then the answer's type); it hands
// Converse's API to the driver as window.starlingAPI. The page must list
// "starling-probe" in whitelisted_plugins.
//
// index.html registers it itself. On a page the driver does not control,
// Starling's bundled chat page, the driver injects this file before the
// page's scripts run and registers the probe when Converse has loaded
// (the converse-loaded event), before the page calls converse.initialize.
window.starling = {
  connected: false, available: false, ready: false, jid: "", transport: "", service: "", events: [],
  // The MAM queries (XEP-0313) Converse sent, and how many were answered.
  mamQueries: 0, mamAnswered: 0,
  // The pubsub publishes (PEP) Converse sent, in order: the node, the
  // bookmarked rooms the items carry (their JIDs and autojoin), and once
  // answered the answer's type and, for an error, the whole answer.
  publishes: [],
  // Content-Security-Policy violations on the page.
  violations: [],
};
document.addEventListener("securitypolicyviolation", (e) => {
  window.starling.violations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile || "?"}:${e.lineNumber || 0})`);
});

window.starlingProbe = function (converse) {
  const { Strophe, $iq } = converse.env;
  converse.plugins.add("starling-probe", {
    initialize() {
      const { api } = this._converse;
      window.starlingAPI = api;
      const note = (name) => {
        const conn = api.connection.get();
        window.starling.events.push(name);
        window.starling.jid = conn?.jid || "";
        const proto = conn?._proto;
        window.starling.transport = proto instanceof Strophe.Websocket ? "websocket"
          : proto instanceof Strophe.Bosh ? "bosh" : String(proto?.constructor?.name);
        window.starling.service = conn?.service || "";
      };
      api.listen.on("connected", () => {
        note("connected");
        window.starling.connected = true;
        // The answers to MAM queries: an IQ result or error whose id is
        // one of the queries'.
        api.connection.get().addHandler((el) => {
          if (window.starling.mamIDs.has(el.getAttribute("id"))) {
            window.starling.mamIDs.delete(el.getAttribute("id"));
            window.starling.mamAnswered++;
          }
          const pub = window.starling.publishes.find((p) => p.id === el.getAttribute("id") && !p.type);
          if (pub && ["result", "error"].includes(el.getAttribute("type"))) {
            pub.type = el.getAttribute("type");
            if (pub.type === "error") {
              pub.answer = el.outerHTML;
            }
          }
          return true;
        }, null, "iq");
      });
      api.listen.on("reconnected", () => note("reconnected"));
      api.listen.on("disconnected", () => { note("disconnected"); window.starling.connected = false; });
      // Initial presence (no "to", no type), then a ping to the server
      // answered: the server has handled the presence (a session's stanzas
      // are handled in order, and over BOSH they may wait for the next
      // request), so a message to the bare JID now reaches this session.
      window.starling.mamIDs = new Set();
      api.listen.on("send", (el) => {
        // (A CSS [xmlns] selector does not see namespace declarations in
        // an XML document: the children are looked at one by one.)
        const isMAM = (c) => c.localName === "query" && (c.getAttribute("xmlns") || c.namespaceURI || "").startsWith("urn:xmpp:mam:");
        if (el.tagName === "iq" && Array.from(el.children).some(isMAM)) {
          window.starling.mamIDs.add(el.getAttribute("id"));
          window.starling.mamQueries++;
        }
        const publish = el.tagName === "iq" && el.getAttribute("type") === "set" &&
          Array.from(el.children).filter((c) => c.localName === "pubsub").flatMap((c) => Array.from(c.children)).find((c) => c.localName === "publish");
        if (publish) {
          // The rooms it bookmarks (XEP-0402: one item per room, its id
          // the room's JID; XEP-0048: all of them in one item), so that a
          // wait can tell the publish it needs from another.
          const rooms = Array.from(publish.getElementsByTagNameNS("*", "conference")).map((c) => ({
            jid: c.getAttribute("jid") || c.parentElement?.getAttribute("id") || "",
            autojoin: ["1", "true"].includes(c.getAttribute("autojoin")),
          }));
          window.starling.publishes.push({ id: el.getAttribute("id"), node: publish.getAttribute("node"), rooms });
        }
        if (el.tagName === "presence" && !el.getAttribute("to") && !el.getAttribute("type") && !window.starling.available) {
          window.starling.available = true;
          const domain = Strophe.getDomainFromJid(api.connection.get().jid);
          setTimeout(() => api.sendIQ($iq({ type: "get", to: domain }).c("ping", { xmlns: "urn:xmpp:ping" })).then(
            () => { window.starling.ready = true; },
            (e) => { window.starling.pingError = String(e && e.outerHTML || e); },
          ));
        }
      });
    },
  });
};
