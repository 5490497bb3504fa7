// Starts Converse.js on Starling's web chat page with the settings the
// server wrote into the page for the host the browser asked for (its
// WebSocket and BOSH URLs, the XMPP domain). A file of its own, not an
// inline script, so that the page's Content-Security-Policy allows
// scripts from the server only.
//
// Converse 14's dist is an ES module; it loads its chunks (locales,
// emoji) relative to itself, from the same server.
import converse from "./dist/converse.min.js";

const settings = JSON.parse(document.getElementById("starling-converse-settings").textContent);

// The login form's footer shows the sponsors' logos from conversejs.org.
// Converse leaves alone a custom element the page defined first: an empty
// one keeps the page from loading anything from another site.
if (!customElements.get("converse-footer")) {
  customElements.define("converse-footer", class extends HTMLElement {});
}

converse.initialize(settings);
