// Drives Converse.js (index.html, or with --login a chat page of the
// server's own) in Debian's headless Chromium through playwright-core,
// for conformance/browser, and reports what happens as JSON lines on
// stdout:
//   {"event":"form","text":"...","settings":{...}}                with --login: the login form shown (text: the
//                                                                 address field's placeholder) and the page's settings
//   {"event":"online","jid":"...","transport":"websocket|bosh","service":"..."}
//   {"event":"avatar","jid":"...","image":"data:..."}             with --avatar: the peer's avatar shown in the roster
//   {"event":"received","from":"...","type":"...","body":"..."}  the message shown in the chat
//   {"event":"sent","body":"..."}                                 the reply, typed and shown as sent
//   {"event":"screenshot","path":"..."}
//   {"event":"bookmarks","bookmarks":[{"jid":"...","name":"..."}],"node":"..."}
//                                                                 with --bookmark-jid: the bookmarks Converse lists,
//                                                                 and the node it keeps them in (urn:xmpp:bookmarks:1
//                                                                 when the account has urn:xmpp:bookmarks:1#compat,
//                                                                 else storage:bookmarks)
//   {"event":"bookmarked","node":"...","type":"result|error","answer":"..."}
//                                                                 with --add-bookmark-jid: the bookmark added, listed,
//                                                                 and the server's answer to Converse's publish of it
//   {"event":"muc-joined","jid":"...","nick":"...","role":"...","affiliation":"...","count":N,"texts":[...]}
//                                                                 with --muc-room: entered the room Converse created
//                                                                 and configured (its own occupant's role and
//                                                                 affiliation, muc#roominfo_occupants of the room's
//                                                                 disco#info as Converse keeps it, the info messages
//                                                                 the room view shows)
//   {"event":"muc-received","from":"...","type":"...","body":"...","nick":"...","occupant_id":"..."}
//                                                                 --muc-expect shown in the room, and Converse's model
//   {"event":"muc-occupants","texts":[...],"text":"...","count":N}  the sidebar's nicks and heading once it lists
//                                                                 --muc-peer-nick, and muc#roominfo_occupants again
//   {"event":"muc-sent","body":"...","path":"..."}               --muc-say typed into the room and shown; its screenshot
//   {"event":"muc-left","node":"...","type":"result|error","answer":"..."}
//                                                                 the room closed (left), and the server's answer to
//                                                                 Converse's publish of its bookmark without autojoin
//   {"event":"uploaded","url":"...","body":"...","put_status":N,"path":"..."}
//                                                                 with --upload-file: the file attached in the chat
//                                                                 with --peer, uploaded and sent: the URL of the
//                                                                 message Converse sent (its oob_url) and its body,
//                                                                 the status of Converse's PUT; its screenshot
//   {"event":"reloaded","jid":"..."}                              with --history: logged in again after the reload
//   {"event":"history","texts":[...],"bodies":[...],"mam":N}       with --history: the chat's texts shown, in order,
//                                                                 the bodies of Converse's message models, in order,
//                                                                 and how many MAM queries it made since the reload
//   {"event":"closed"}                                            logged out, browser closed
//   {"event":"error","error":"..."}                               then it exits 1
//   {"event":"log","text":"..."}                                  browser console/page output, for the test log
//
// Steps: open the page (served by the test) with the transport, URL and
// credentials; wait until Converse is connected and has sent its initial
// presence and the server has handled it; wait until Converse has a chat
// message from --peer whose text is --expect, then until it appears in
// the chat view (opening the chat from the controlbox, as a user does, if
// Converse did not show it); type --reply into that chat's text area and
// press Enter; wait until the reply shows in the chat; save a screenshot
// to --screenshot; then wait for a line "quit" on stdin, log out and
// close the browser. Any request to a host other than the page's and the
// XMPP service's is refused and fails the run: Converse must need nothing
// from the network; so is any violation of the page's
// Content-Security-Policy.
//
// With --avatar BASE64 (a PNG image), once logged in: wait until the
// peer's entry in the roster (the controlbox) shows an avatar whose image
// is exactly those bytes, however Converse got it (it asks for the
// contact's vCard, XEP-0054, and shows its PHOTO), and report its data
// URL; then go on with the message.
//
// With --bookmark-jid and --bookmark-name, after the screenshot: open the
// bookmarks as a user does (the Groupchats menu, then Bookmarks) and wait
// until that room is listed, then report what the list shows. With
// --add-bookmark-jid and --add-bookmark-name too, bookmark that room
// through Converse's API (api.bookmarks.set: Converse's form for it is
// part of a groupchat's view, which needs a MUC service to join), wait
// until the server has answered Converse's publish of it and the list
// shows it, and report the answer; a screenshot of the list, "-bookmarks".
//
// With --muc-room JID and --muc-nick NICK, after the bookmarks: open that
// room through Converse's API (api.rooms.open, forced to the front, as
// its "Add a groupchat" form does); Converse creates it (status 201) and, as it does by default
// (muc_instant_rooms), accepts the default configuration and asks for the
// room's disco#info again. Once it has, report what it knows; wait until
// --muc-expect shows in the room view (the test has a peer enter and
// write), and the sidebar lists --muc-peer-nick; then type --muc-say into
// the room's text area, press Enter, wait until it shows, and save a
// screenshot, "-muc"; then leave the room (Converse's close of it) and
// wait until the server has answered the publish of its bookmark, which
// Converse made with autojoin when it entered the room, now without.
//
// With --upload-file PATH, --upload-name NAME and --upload-type TYPE, after
// the group chat: bring the chat with --peer to the front, click its
// paperclip (shown once Converse has found an upload service,
// urn:xmpp:http:upload:0, among its server's disco#items) and choose the
// file at PATH, named NAME, of type TYPE, in the file chooser it opens.
// Converse asks the service for a slot, PUTs the file from the page (an
// XMLHttpRequest to the service's HTTPS origin: cross-origin, so CORS)
// and sends the GET URL to --peer as the body and jabber:x:oob URL. Wait
// until that message is sent and shows as a link, and report it; a
// Converse error (no slot, a failed PUT) fails the run with its text.
// The page may reach each --upload-origin (the upload service's URLs),
// beside its own origin and the XMPP service.
//
// With --history, after the screenshot and a line "reload" on stdin (the
// test has seen the reply arrive): log out, leave the page, clear
// everything the browser keeps for the page's origin (IndexedDB, local
// and session storage, through the DevTools protocol), and load the page
// again, which logs in anew: Converse then knows nothing of the
// conversation. Open the chat with --peer, as a user does by clicking the
// contact; Converse fetches its history from the archive (XEP-0313), the
// only place it can still come from. Wait until --expect and --reply are
// shown and every MAM query Converse sent has been answered and its
// results handled, then report what the chat shows.
//
// With --login NAME the page is not index.html but one that starts
// Converse itself (Starling's bundled web client): the driver injects
// probe.js into it, registers the probe when Converse has loaded and
// records the settings the page passes to converse.initialize, then logs
// in as a user does: it types NAME and the password into Converse's
// login form and submits it. --transport and --url are then what the page
// must have connected with.
//
// usage: node driver.mjs --page http://127.0.0.1:PORT/index.html
//          --transport websocket|bosh --url ws[s]://…|http[s]://…
//          --jid alice@localhost --password pw --peer bob@localhost
//          --expect TEXT --reply TEXT --screenshot FILE.png
//          [--history] [--avatar BASE64] [--bookmark-jid JID --bookmark-name NAME
//          [--add-bookmark-jid JID --add-bookmark-name NAME]]
//          [--muc-room JID --muc-nick NICK --muc-peer-nick NICK --muc-expect TEXT --muc-say TEXT]
//          [--upload-file PATH --upload-name NAME --upload-type TYPE --upload-origin ORIGIN…]
//    or:  node driver.mjs --page https://localhost:PORT/chat --login alice
//          --transport websocket --url wss://… --password pw --peer … …
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const { values: opt } = parseArgs({
  options: {
    page: { type: "string" },
    transport: { type: "string" },
    url: { type: "string" },
    jid: { type: "string" },
    login: { type: "string" },
    password: { type: "string" },
    peer: { type: "string" },
    expect: { type: "string" },
    reply: { type: "string" },
    screenshot: { type: "string" },
    history: { type: "boolean", default: false },
    avatar: { type: "string" },
    "bookmark-jid": { type: "string" },
    "bookmark-name": { type: "string" },
    "add-bookmark-jid": { type: "string" },
    "add-bookmark-name": { type: "string" },
    "muc-room": { type: "string" },
    "muc-nick": { type: "string" },
    "muc-peer-nick": { type: "string" },
    "muc-expect": { type: "string" },
    "muc-say": { type: "string" },
    "upload-file": { type: "string" },
    "upload-name": { type: "string" },
    "upload-type": { type: "string" },
    "upload-origin": { type: "string", multiple: true, default: [] },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    timeout: { type: "string", default: "30000" },
  },
});
const timeout = Number(opt.timeout);
const report = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// poll evaluates fn(arg) in the page, an async function (one that asks
// Converse's API, whose getters return Promises), every pollInterval ms
// until what it resolves to is truthy, and returns that; it throws once
// ms have passed without. page.waitForFunction cannot wait on such a
// function: it takes the Promise the function returns, truthy whatever
// it resolves to, for the condition met, and so does not wait at all.
// An error in fn fails the wait at once, as it does in waitForFunction.
const pollInterval = 100;
async function poll(page, fn, arg, ms) {
  const deadline = Date.now() + ms;
  const late = {};
  for (;;) {
    let timer;
    const expired = new Promise((resolve) => (timer = setTimeout(() => resolve(late), Math.max(deadline - Date.now(), 0))));
    const evaluation = page.evaluate(fn, arg);
    evaluation.catch(() => {}); // when it loses the race
    const value = await Promise.race([evaluation, expired]).finally(() => clearTimeout(timer));
    if (value === late) {
      break;
    }
    if (value) {
      return value;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollInterval, left)));
  }
  throw new Error(`the condition was not met within ${ms} ms`);
}

// Lines from the test on stdin: "quit" ends the run.
const stdin = createInterface({ input: process.stdin });
const quit = new Promise((resolve) => {
  stdin.on("line", (l) => l.trim() === "quit" && resolve());
  stdin.on("close", resolve);
});
// With --history, "reload" starts the reload once the test has seen the
// reply arrive.
const reload = new Promise((resolve) => {
  stdin.on("line", (l) => l.trim() === "reload" && resolve());
  stdin.on("close", resolve);
});

const userDataDir = mkdtempSync(join(tmpdir(), "starling-chromium-"));
let context;

async function main() {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: opt.chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--no-first-run",
      "--no-default-browser-check",
      // The servers' certificates are self-signed: wss:// and https://
      // connections to them are accepted (ignoreHTTPSErrors below too).
      "--ignore-certificate-errors",
    ],
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
  });

  // Only the page's own origin and the XMPP service may be reached: other
  // requests are refused, and counted against the run.
  const allowed = new Set([new URL(opt.page).origin]);
  const service = new URL(opt.url);
  allowed.add(service.origin);
  for (const origin of opt["upload-origin"]) {
    allowed.add(new URL(origin).origin);
  }
  const refused = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    let origin = "";
    try {
      origin = new URL(url).origin;
    } catch {}
    if (allowed.has(origin)) {
      return route.continue();
    }
    refused.push(url);
    report({ event: "log", text: `refused request to ${url}` });
    return route.abort("blockedbyclient");
  });

  if (opt.login !== undefined) {
    // The probe, in a page that does not load it: injected before the
    // page's scripts, registered when Converse has loaded, and added to
    // the plugins the page's settings allow.
    await context.addInitScript({ path: fileURLToPath(new URL("probe.js", import.meta.url)) });
    await context.addInitScript(() => {
      window.addEventListener("converse-loaded", (e) => {
        const converse = e.detail.converse;
        window.starlingProbe(converse);
        const initialize = converse.initialize;
        converse.initialize = function (settings, callback) {
          window.starling.settings = JSON.parse(JSON.stringify(settings ?? {}));
          const plugins = [...(settings?.whitelisted_plugins ?? []), "starling-probe"];
          return initialize.call(this, { ...settings, whitelisted_plugins: plugins }, callback);
        };
      });
    });
  }

  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => ["verbose", "debug"].includes(m.type()) || report({ event: "log", text: `console.${m.type()}: ${m.text()}` }));
  page.on("pageerror", (e) => report({ event: "log", text: `page error: ${e.message}` }));
  // WebSockets do not go through route(): checked here.
  page.on("websocket", (ws) => {
    report({ event: "log", text: `WebSocket opened: ${ws.url()}` });
    if (new URL(ws.url()).origin !== service.origin) {
      refused.push(ws.url());
    }
  });
  // With --login the page and what it loads are the server's: none of
  // its files may be missing.
  const missing = [];
  page.on("response", (r) => {
    if (r.status() < 400) {
      return;
    }
    report({ event: "log", text: `HTTP ${r.status()} for ${r.url()}` });
    if (opt.login !== undefined && new URL(r.url()).origin === new URL(opt.page).origin) {
      missing.push(`${r.url()} (${r.status()})`);
    }
  });

  if (opt.login === undefined) {
    const q = new URLSearchParams({ transport: opt.transport, url: opt.url, jid: opt.jid, password: opt.password });
    await page.goto(`${opt.page}?${q}`, { timeout });
  } else {
    // 0. The page's own login form: the address (its placeholder says
    // what to type) and the password, submitted as a user does.
    await page.goto(opt.page, { timeout });
    const address = page.locator("#converse-login-jid");
    try {
      await address.waitFor({ state: "visible", timeout });
    } catch {
      throw new Error(`no login form within ${timeout} ms`);
    }
    const settings = await page.evaluate(() => window.starling.settings);
    report({ event: "form", text: (await address.getAttribute("placeholder")) || "", settings: settings || null });
    await address.fill(opt.login);
    await page.locator("#converse-login-password").fill(opt.password);
    await page.locator("#converse-login button[type=submit]").click({ timeout });
  }

  // 1. Logged in, initial presence sent and handled by the server.
  // A failed login ends in the login form with an error ("Your XMPP
  // address and/or password is incorrect"...): no need to wait longer.
  const feedback = page.locator(".conn-feedback.alert-danger");
  try {
    await page.waitForFunction(
      () => (window.starling && window.starling.connected && window.starling.ready) || document.querySelector(".conn-feedback.alert-danger:not(.d-none)"),
      null,
      { timeout },
    );
  } catch (e) {
    const state = await page.evaluate(() => JSON.stringify(window.starling)).catch(() => "?");
    throw new Error(`Converse did not log in within ${timeout} ms (state ${state})`);
  }
  if (await feedback.isVisible()) {
    throw new Error(`Converse did not log in: it says "${(await feedback.innerText()).trim()}"`);
  }
  const state = await page.evaluate(() => window.starling);
  report({ event: "online", jid: state.jid, transport: state.transport, service: state.service });

  // 1b. With --avatar: the peer's avatar, in the roster, is that image.
  if (opt.avatar !== undefined) {
    const selector = `converse-controlbox a.open-chat[data-jid="${opt.peer}"] converse-avatar svg image`;
    const shown = () =>
      page.evaluate((selector) => document.querySelector(selector)?.getAttribute("href") ?? null, selector);
    try {
      await page.waitForFunction(
        ({ selector, want }) => {
          const href = document.querySelector(selector)?.getAttribute("href") ?? "";
          const m = /^data:[^,]*;base64,(.*)$/s.exec(href);
          try {
            return m !== null && atob(m[1].replace(/\s+/g, "")) === atob(want);
          } catch {
            return false;
          }
        },
        { selector, want: opt.avatar },
        { timeout },
      );
    } catch {
      // What Converse shows instead, and what it made of the vCard.
      const href = await shown();
      const vcard = await page.evaluate(async (peer) => {
        const contact = await window.starlingAPI.contacts.get(peer);
        if (!contact) {
          return "no roster contact";
        }
        const attrs = { ...(contact.vcard?.attributes ?? {}) };
        if (attrs.image) {
          attrs.image = `${attrs.image.length} base64 characters`;
        }
        return JSON.stringify(attrs);
      }, opt.peer);
      throw new Error(
        `the roster does not show ${opt.peer}'s avatar within ${timeout} ms: it shows ` +
          (href === null ? "no image" : `an image of ${href.length} characters (${href.slice(0, 60)}…)`) +
          `; Converse's vCard for ${opt.peer}: ${vcard}`,
      );
    }
    report({ event: "avatar", jid: opt.peer, image: await shown() });
  }

  // 2. The peer's message shows up in its chat. First Converse has it:
  // a message model in its chat with the peer (which it creates for the
  // message), what it made of the message. Only then is the chat opened,
  // if need be: a peer who is a contact is listed in the controlbox from
  // the start, and a click on him while Converse is still creating the
  // chat for the message makes it create a second one (each finds none),
  // one of which is dropped, maybe the message's, never shown. In the
  // fullscreen view Converse lists a new conversation in the controlbox,
  // with its unread count, without opening it: a click on it, as a user
  // does, opens the chat (if Converse has opened the chat itself, there
  // is nothing to click).
  const chat = page.locator("converse-chat").filter({ has: page.locator(`converse-chat-heading[jid="${opt.peer}"]`) });
  const incoming = chat.locator(".chat-msg__text", { hasText: opt.expect }).first();
  const listed = page.locator(`converse-controlbox a.open-chat[data-jid="${opt.peer}"]`).first();
  let msg;
  try {
    msg = await poll(
      page,
      async ({ peer, expect }) => {
        const box = await window.starlingAPI.chats.get(peer);
        const m = box && box.messages.findWhere({ body: expect });
        return m ? { from: m.get("from"), type: m.get("type"), body: m.get("body"), sender: m.get("sender") } : null;
      },
      { peer: opt.peer, expect: opt.expect },
      timeout,
    );
  } catch {
    const bodies = await page.evaluate(async (peer) => {
      const box = await window.starlingAPI.chats.get(peer);
      return box ? box.messages.map((m) => m.get("body")) : null;
    }, opt.peer);
    throw new Error(
      `Converse has no message from ${opt.peer} "${opt.expect}" within ${timeout} ms ` +
        (bodies === null ? "(and no chat with him)" : `(its chat with him has ${JSON.stringify(bodies)})`),
    );
  }
  try {
    if (!(await incoming.isVisible())) {
      await listed.click({ timeout });
    }
    await incoming.waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(`Converse has the message from ${opt.peer}, but its chat does not show "${opt.expect}" within ${timeout} ms`);
  }
  report({ event: "received", ...msg });

  // 3. The reply, typed into that chat's text area; Enter sends it.
  const textarea = chat.locator("textarea.chat-textarea");
  await textarea.click({ timeout });
  await page.keyboard.type(opt.reply);
  await page.keyboard.press("Enter");
  await chat.locator(".chat-msg__text", { hasText: opt.reply }).first().waitFor({ state: "visible", timeout });
  report({ event: "sent", body: opt.reply });

  // 4. The screenshot: the conversation, both ways.
  await page.screenshot({ path: opt.screenshot, fullPage: true });
  report({ event: "screenshot", path: opt.screenshot });

  // 4b. With --bookmark-jid: the bookmarks, listed as a user opens them;
  // with --add-bookmark-jid, one added.
  if (opt["bookmark-jid"] !== undefined) {
    await bookmarks(page);
  }

  // 4c. With --muc-room: the group chat.
  if (opt["muc-room"] !== undefined) {
    await groupchat(page);
  }

  // 4d. With --upload-file: a file shared in the chat with the peer.
  if (opt["upload-file"] !== undefined) {
    await uploadFile(page);
  }

  if (refused.length > 0) {
    throw new Error(`Converse tried to reach other hosts: ${refused.join(" ")}`);
  }
  if (missing.length > 0) {
    throw new Error(`the page's server answered errors for: ${missing.join(" ")}`);
  }
  const violations = await page.evaluate(() => window.starling.violations);
  if (violations.length > 0) {
    throw new Error(`the page's Content-Security-Policy blocked: ${violations.join("; ")}`);
  }

  // 6. With --history: the reload, and the history from the archive.
  if (opt.history) {
    await reload;
    await page.evaluate(() => window.starlingAPI.user.logout());
    try {
      await page.waitForFunction(() => !window.starling.connected, null, { timeout });
    } catch {
      throw new Error(`Converse was still connected ${timeout} ms after logging out`);
    }
    await page.goto("about:blank", { timeout });
    const cdp = await context.newCDPSession(page);
    await cdp.send("Storage.clearDataForOrigin", { origin: new URL(opt.page).origin, storageTypes: "all" });
    await cdp.detach();
    const q = new URLSearchParams({ transport: opt.transport, url: opt.url, jid: opt.jid, password: opt.password });
    await page.goto(`${opt.page}?${q}`, { timeout });
    try {
      await page.waitForFunction(() => window.starling && window.starling.connected && window.starling.ready, null, { timeout });
    } catch {
      throw new Error(`Converse did not log in again after the reload within ${timeout} ms`);
    }
    report({ event: "reloaded", jid: await page.evaluate(() => window.starling.jid) });
    await page.evaluate((peer) => window.starlingAPI.chats.open(peer), opt.peer);
    const reloaded = page.locator("converse-chat").filter({ has: page.locator(`converse-chat-heading[jid="${opt.peer}"]`) });
    for (const text of [opt.expect, opt.reply]) {
      try {
        await reloaded.locator(".chat-msg__text", { hasText: text }).first().waitFor({ state: "visible", timeout });
      } catch {
        throw new Error(`after the reload the chat with ${opt.peer} does not show "${text}" within ${timeout} ms`);
      }
    }
    // Every MAM query answered, and what its results made queued and handled.
    try {
      await page.waitForFunction(() => window.starling.mamQueries > 0 && window.starling.mamAnswered === window.starling.mamQueries, null, { timeout });
    } catch {
      const { mamQueries, mamAnswered } = await page.evaluate(() => window.starling);
      throw new Error(`Converse's MAM queries were not all answered within ${timeout} ms: ${mamAnswered} of ${mamQueries}`);
    }
    const bodies = await page.evaluate(async (peer) => {
      const box = await window.starlingAPI.chats.get(peer);
      await box.msg_chain;
      return box.messages.models.map((m) => m.get("body")).filter((b) => b);
    }, opt.peer);
    const texts = await reloaded.locator(".chat-msg__text").allInnerTexts();
    report({ event: "history", texts: texts.map((t) => t.trim()), bodies, mam: await page.evaluate(() => window.starling.mamQueries) });
    await page.screenshot({ path: opt.screenshot.replace(/\.png$/, "") + "-history.png", fullPage: true });
  }

  // 5. The test checks the reply's arrival, then lets the user log out.
  await quit;
  await page.evaluate(() => window.starlingAPI.user.logout()).catch((e) => report({ event: "log", text: `logout: ${e}` }));
  await page.waitForFunction(() => !window.starling.connected, null, { timeout: 5000 }).catch(() => {
    report({ event: "log", text: "still connected 5 s after logout" });
  });
}

// bookmarks is step 4b: the Groupchats menu in the controlbox, then
// Bookmarks, which opens the list; --bookmark-jid must be listed. Then,
// with --add-bookmark-jid, that bookmark added through Converse's API:
// listed, and its publish answered.
async function bookmarks(page) {
  const bare = (await page.evaluate(() => window.starling.jid)).split("/")[0];
  const ns = (await page.evaluate(
    (bare) => window.starlingAPI.disco.supports("urn:xmpp:bookmarks:1#compat", bare),
    bare,
  ))
    ? "urn:xmpp:bookmarks:1"
    : "storage:bookmarks";
  const rooms = page.locator("converse-controlbox converse-rooms-list");
  await rooms.locator("converse-dropdown button.dropdown-toggle").first().click({ timeout });
  await rooms.locator("a.show-bookmark-list-modal").click({ timeout });
  const modal = page.locator("converse-bookmark-list-modal");
  const item = (jid) => modal.locator(`converse-bookmarks a.open-room[data-room-jid="${jid}"]`);
  const listed = () =>
    modal.locator("converse-bookmarks a.open-room").evaluateAll((els) =>
      els.map((a) => ({ jid: a.getAttribute("data-room-jid"), name: a.textContent.trim() })),
    );
  // Why Converse might have no bookmarks at all: it keeps them only if the
  // account is a PEP service with publish-options (XEP-0223).
  const support = () =>
    page.evaluate(async (bare) => {
      const api = window.starlingAPI;
      const pep = !!(await api.disco.getIdentity("pubsub", "pep", bare));
      const options = await api.disco.supports("http://jabber.org/protocol/pubsub#publish-options", bare);
      return `PEP identity ${pep}, publish-options ${options}`;
    }, bare);
  try {
    await item(opt["bookmark-jid"]).waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(
      `Converse's bookmarks do not list ${opt["bookmark-jid"]} within ${timeout} ms: they list ` +
        `${JSON.stringify(await listed())} (node ${ns}; ${await support()})`,
    );
  }
  report({ event: "bookmarks", bookmarks: await listed(), node: ns });

  if (opt["add-bookmark-jid"] !== undefined) {
    const jid = opt["add-bookmark-jid"];
    const before = await page.evaluate(() => window.starling.publishes.length);
    await page.evaluate(
      ({ jid, name }) => window.starlingAPI.bookmarks.set({ jid, name, autojoin: false }),
      { jid, name: opt["add-bookmark-name"] },
    );
    let pub;
    try {
      // (that of this bookmark: not one Converse sent for another reason)
      const handle = await page.waitForFunction(
        ({ before, ns, jid }) =>
          window.starling.publishes.slice(before).find((p) => p.node === ns && p.type && p.rooms.some((r) => r.jid.toLowerCase() === jid.toLowerCase())),
        { before, ns, jid },
        { timeout },
      );
      pub = await handle.jsonValue();
    } catch {
      const sent = await page.evaluate((before) => window.starling.publishes.slice(before), before);
      throw new Error(`Converse's publish of the bookmark ${jid} to ${ns} was not answered within ${timeout} ms (publishes: ${JSON.stringify(sent)})`);
    }
    try {
      await item(jid).waitFor({ state: "visible", timeout });
    } catch {
      throw new Error(`Converse's bookmarks do not list ${jid} within ${timeout} ms after adding it: they list ${JSON.stringify(await listed())}`);
    }
    report({ event: "bookmarked", node: pub.node, type: pub.type, answer: pub.answer ?? "" });
  }
  await page.screenshot({ path: opt.screenshot.replace(/\.png$/, "") + "-bookmarks.png", fullPage: true });
  await page.keyboard.press("Escape");
  await modal.locator(".modal").first().waitFor({ state: "hidden", timeout }).catch(() => {});
}

// groupchat is step 4c: the room --muc-room entered as --muc-nick, a
// message from --muc-peer-nick shown, the occupants listed, and
// --muc-say posted.
async function groupchat(page) {
  const jid = opt["muc-room"];
  // force: shown in front of the chat with the peer, as a room a user
  // opens is.
  await page.evaluate(({ jid, nick }) => window.starlingAPI.rooms.open(jid, { nick }, true), { jid, nick: opt["muc-nick"] });
  const view = page.locator(`converse-muc[jid="${jid}"]`);
  // Entered (ROOMSTATUS.ENTERED), and configured: the disco#info Converse
  // asks for after accepting the defaults has the occupant count.
  const state = () =>
    page.evaluate(async (jid) => {
      const muc = await window.starlingAPI.rooms.get(jid);
      const self = muc?.getOwnOccupant();
      return {
        status: muc?.session.get("connection_status"),
        nick: muc?.get("nick") ?? "",
        role: self?.get("role") ?? "",
        affiliation: self?.get("affiliation") ?? "",
        count: muc?.config.get("occupants"),
      };
    }, jid);
  try {
    await poll(
      page,
      async (jid) => {
        const muc = await window.starlingAPI.rooms.get(jid);
        return !!muc && muc.session.get("connection_status") === 5 && muc.config.get("occupants") !== undefined;
      },
      jid,
      timeout,
    );
    // (the custom element itself has no box of its own: its heading)
    await view.locator("converse-muc-heading").first().waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(`Converse did not enter and configure ${jid} within ${timeout} ms: ${JSON.stringify(await state())}`);
  }
  const joined = await state();
  const info = await view.locator(".chat-info").allInnerTexts();
  report({ event: "muc-joined", jid, nick: joined.nick, role: joined.role, affiliation: joined.affiliation,
    count: Number(joined.count), texts: info.map((t) => t.trim()) });

  const incoming = view.locator(".chat-msg__text", { hasText: opt["muc-expect"] }).first();
  try {
    await incoming.waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(`the room ${jid} does not show "${opt["muc-expect"]}" within ${timeout} ms`);
  }
  const msg = await page.evaluate(
    async ({ jid, expect }) => {
      const muc = await window.starlingAPI.rooms.get(jid);
      const m = muc.messages.findWhere({ body: expect });
      return m ? { from: m.get("from"), type: m.get("type"), body: m.get("body"), nick: m.get("nick"), occupant_id: m.get("occupant_id") ?? "" } : null;
    },
    { jid, expect: opt["muc-expect"] },
  );
  if (!msg) {
    throw new Error(`the room ${jid} shows "${opt["muc-expect"]}", but Converse has no such message`);
  }
  report({ event: "muc-received", ...msg });

  const sidebar = view.locator("converse-muc-sidebar");
  try {
    await sidebar.locator(".occupant-nick", { hasText: opt["muc-peer-nick"] }).first().waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(`the sidebar of ${jid} does not list ${opt["muc-peer-nick"]} within ${timeout} ms`);
  }
  const count = await page.evaluate(async (jid) => {
    const muc = await window.starlingAPI.rooms.get(jid);
    await muc.refreshDiscoInfo();
    return Number(muc.config.get("occupants"));
  }, jid);
  report({
    event: "muc-occupants",
    texts: (await sidebar.locator(".occupant-nick").allInnerTexts()).map((t) => t.trim()),
    text: (await sidebar.locator(".occupants-heading").first().innerText()).trim(),
    count,
  });

  await view.locator("textarea.chat-textarea").click({ timeout });
  await page.keyboard.type(opt["muc-say"]);
  await page.keyboard.press("Enter");
  await view.locator(".chat-msg__text", { hasText: opt["muc-say"] }).first().waitFor({ state: "visible", timeout });
  const path = opt.screenshot.replace(/\.png$/, "") + "-muc.png";
  await page.screenshot({ path, fullPage: true });
  report({ event: "muc-sent", body: opt["muc-say"], path });

  // The user leaves the room (Converse's close of it). Converse bookmarked
  // it with autojoin when it entered it, as it does every new room, and
  // now stores the bookmark with autojoin false: once the server has
  // answered that publish, a later login does not enter the room again.
  const before = await page.evaluate(() => window.starling.publishes.length);
  await page.evaluate(async (jid) => (await window.starlingAPI.rooms.get(jid)).close(), jid);
  let pub;
  try {
    // (that of the bookmark without autojoin: not the one Converse sends,
    // with autojoin, on entering the room, should that come late, nor one
    // it sent for another reason)
    const handle = await page.waitForFunction(
      ({ before, jid }) =>
        window.starling.publishes.slice(before).find((p) => p.type && p.rooms.some((r) => r.jid.toLowerCase() === jid.toLowerCase() && !r.autojoin)),
      { before, jid },
      { timeout },
    );
    pub = await handle.jsonValue();
  } catch {
    const sent = await page.evaluate((before) => window.starling.publishes.slice(before), before);
    throw new Error(`Converse's bookmark of ${jid} without autojoin was not answered within ${timeout} ms after leaving it (publishes: ${JSON.stringify(sent)})`);
  }
  report({ event: "muc-left", node: pub.node, type: pub.type, answer: pub.answer ?? "" });
}

// uploadFile is step 4d: the file --upload-file attached in the chat with
// --peer as a user does (the paperclip, then the file chooser), uploaded
// by Converse and its URL sent.
async function uploadFile(page) {
  // Converse's PUT, as the browser saw it: its response, or why it failed
  // (a CORS refusal shows here as net::ERR_FAILED).
  const puts = [];
  page.on("response", (r) => r.request().method() === "PUT" && puts.push({ url: r.url(), status: r.status() }));
  page.on("requestfailed", (r) => r.method() === "PUT" && puts.push({ url: r.url(), status: 0, error: r.failure()?.errorText ?? "" }));
  await page.evaluate((peer) => window.starlingAPI.chats.open(peer, {}, true), opt.peer);
  const chat = page.locator("converse-chat").filter({ has: page.locator(`converse-chat-heading[jid="${opt.peer}"]`) });
  const paperclip = chat.locator("converse-chat-toolbar button", { has: page.locator("converse-icon.fa-paperclip") });
  try {
    await paperclip.waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(`the chat with ${opt.peer} has no file upload button within ${timeout} ms (Converse shows it when its server lists an upload service)`);
  }
  // The chat's messages so far (with --history, those of an earlier run
  // too, from the archive), which are not this upload's.
  await page.evaluate(async (peer) => {
    window.starling.before = new Set((await window.starlingAPI.chats.get(peer)).messages.models);
  }, opt.peer);
  const [chooser] = await Promise.all([page.waitForEvent("filechooser", { timeout }), paperclip.click({ timeout })]);
  await chooser.setFiles({ name: opt["upload-name"], mimeType: opt["upload-type"], buffer: readFileSync(opt["upload-file"]) });
  // The message Converse sends once the PUT succeeded (the file's own
  // model is then replaced by it), or the error it shows instead, as
  // Converse's messages change.
  const sent = await page.evaluate(
    async ({ peer, timeout }) => {
      const box = await window.starlingAPI.chats.get(peer);
      return new Promise((resolve) => {
        const before = window.starling.before;
        const check = () => {
          const m = box.messages.find((m) => !before.has(m) && m.get("oob_url") && m.get("sender") === "me" && !m.get("file"));
          const e = box.messages.find((m) => !before.has(m) && m.get("type") === "error" && m.get("is_ephemeral"));
          if (m || e) {
            box.messages.off("add change", check);
            resolve(m ? { url: m.get("oob_url"), body: m.get("body") } : { error: e.get("message") });
          }
        };
        box.messages.on("add change", check);
        setTimeout(() => resolve({ timeout: true }), timeout);
        check();
      });
    },
    { peer: opt.peer, timeout },
  );
  if (sent.timeout) {
    throw new Error(`Converse did not send the uploaded file's URL within ${timeout} ms (its PUTs: ${JSON.stringify(puts)})`);
  }
  if (sent.error) {
    throw new Error(`Converse could not upload the file: "${sent.error}" (its PUTs: ${JSON.stringify(puts)})`);
  }
  try {
    await chat.locator(".chat-msg__text a", { hasText: opt["upload-name"] }).or(chat.locator(`.chat-msg__text a[href="${sent.url}"]`)).first().waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(`the chat with ${opt.peer} does not show a link to ${sent.url} within ${timeout} ms`);
  }
  const path = opt.screenshot.replace(/\.png$/, "") + "-upload.png";
  await page.screenshot({ path, fullPage: true });
  const put = puts.find((p) => p.status !== 0) ?? puts[0];
  report({ event: "uploaded", url: sent.url, body: sent.body, put_status: put?.status ?? -1, path });
}

let code = 0;
try {
  await main();
} catch (e) {
  let error = String((e && e.message) || e);
  // What the page showed when it failed, beside where the screenshot goes.
  const page = context && context.pages()[0];
  if (page && opt.screenshot) {
    const path = opt.screenshot.replace(/\.png$/, "") + "-failed.png";
    await page.screenshot({ path, fullPage: true }).then(
      () => (error += ` (screenshot: ${path})`),
      (e) => (error += ` (no screenshot: ${e})`),
    );
  }
  report({ event: "error", error });
  code = 1;
} finally {
  if (context) {
    await context.close().catch(() => {});
  }
  rmSync(userDataDir, { recursive: true, force: true });
  if (code === 0) {
    report({ event: "closed" });
  }
  stdin.close();
  process.exit(code);
}
