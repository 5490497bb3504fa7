// Drives Converse.js (index.html, or with --login a chat page of the
// server's own) in Debian's headless Chromium through playwright-core,
// for conformance/browser, and reports what happens as JSON lines on
// stdout:
//   {"event":"form","text":"...","settings":{...}}                with --login: the login form shown (text: the
//                                                                 address field's placeholder) and the page's settings
//   {"event":"online","jid":"...","transport":"websocket|bosh","service":"..."}
//   {"event":"received","from":"...","type":"...","body":"..."}  the message shown in the chat
//   {"event":"sent","body":"..."}                                 the reply, typed and shown as sent
//   {"event":"screenshot","path":"..."}
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
// presence and the server has handled it; wait until a chat message from
// --peer whose text is --expect appears in the chat view (opening the chat
// from the controlbox, as a user does, if Converse did not show it); type
// --reply into that chat's text area and press Enter; wait until the reply
// shows in the chat; save a screenshot to --screenshot; then wait for a
// line "quit" on stdin, log out and close the browser. Any request to a
// host other than the page's and the XMPP service's is refused and fails
// the run: Converse must need nothing from the network; so is any
// violation of the page's Content-Security-Policy.
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
//    or:  node driver.mjs --page https://localhost:PORT/chat --login alice
//          --transport websocket --url wss://… --password pw --peer … …
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
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
    chromium: { type: "string", default: "/usr/bin/chromium" },
    timeout: { type: "string", default: "30000" },
  },
});
const timeout = Number(opt.timeout);
const report = (o) => process.stdout.write(JSON.stringify(o) + "\n");

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

  // 2. The peer's message shows up in its chat. In the fullscreen view
  // Converse lists a new conversation in the controlbox, with its unread
  // count, without opening it: a click on it, as a user does, opens the
  // chat (if Converse has opened the chat itself, there is nothing to
  // click).
  const chat = page.locator("converse-chat").filter({ has: page.locator(`converse-chat-heading[jid="${opt.peer}"]`) });
  const incoming = chat.locator(".chat-msg__text", { hasText: opt.expect }).first();
  const listed = page.locator(`converse-controlbox a.open-chat[data-jid="${opt.peer}"]`).first();
  try {
    await incoming.or(listed).first().waitFor({ state: "visible", timeout });
  } catch {
    throw new Error(`no message from ${opt.peer} in the chat or the controlbox within ${timeout} ms`);
  }
  if (!(await incoming.isVisible())) {
    await listed.click({ timeout });
    await incoming.waitFor({ state: "visible", timeout });
  }
  // What Converse made of it: its message model.
  const msg = await page.evaluate(
    async ({ peer, expect }) => {
      const box = await window.starlingAPI.chats.get(peer);
      const m = box && box.messages.findWhere({ body: expect });
      return m ? { from: m.get("from"), type: m.get("type"), body: m.get("body"), sender: m.get("sender") } : null;
    },
    { peer: opt.peer, expect: opt.expect },
  );
  if (!msg) {
    throw new Error(`the chat with ${opt.peer} shows "${opt.expect}", but Converse has no such message`);
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
