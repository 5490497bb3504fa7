#!/usr/bin/python3
"""An OMEMO client on python-omemo and slixmpp (Debian python3-omemo 1.0,
python3-oldmemo, python3-xmlschema, python3-slixmpp 1.8), driven line by line.

slixmpp-omemo is not in Debian, so the glue is here: a SessionManager
whose storage is in memory, that trusts every device (blind trust), and
whose bundles and device lists go through slixmpp's xep_0060 to the PEP
nodes of OMEMO 0.3 (eu.siacs.conversations.axolotl, the version Profanity
and Conversations speak), published with publish-options
pubsub#access_model=open as Conversations and Gajim do; the XML is
oldmemo.etree's.

Logs in as --jid over STARTTLS, trusting only --ca-file, creates its
OMEMO device (device list and bundle published) and then does what the
commands on stdin say, one JSON object per line:

  {"cmd": "send", "to": BARE-JID, "text": T}   encrypts T for every device of BARE-JID
                                               (and this account's other devices) and
                                               sends it in a chat message without a body
  {"cmd": "quit"}                              disconnect(), then exit 0

Everything observable goes to stdout as JSON lines:

  {"event": "ready", "jid": FULL-JID, "device_id": N}
  {"event": "sent", "to": BARE-JID, "devices": [N...]}    the devices the message was encrypted for
  {"event": "message", "from": FULL-JID, "body": B or null, "sid": N,
   "plaintext": T or null, "error": E or null}            a message carrying <encrypted/>:
                                                          its <body/> as sent (if any) and what
                                                          python-omemo decrypted (null for an
                                                          empty OMEMO message) or why it failed
  {"event": "fatal", "error": E}                          then exit 1

The log (slixmpp's, with every stanza, and python-omemo's) goes to stderr.
"""

import argparse
import asyncio
import json
import logging
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0004 import Form

import omemo
import oldmemo
import oldmemo.etree
from oldmemo.oldmemo import NAMESPACE

DEVICE_LIST_NODE = NAMESPACE + ".devicelist"
BUNDLES_NODE = NAMESPACE + ".bundles:"


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class MemoryStorage(omemo.Storage):
    def __init__(self):
        super().__init__()
        self.data = {}

    async def _load(self, key):
        if key in self.data:
            return omemo.Just(self.data[key])
        return omemo.Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


def open_access():
    """publish-options: the node readable by anyone (XEP-0060 §7.1.5)."""
    form = Form()
    form.set_type("submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#access_model", value="open")
    return form


def item_not_found(e):
    return isinstance(e, IqError) and e.iq["error"]["condition"] == "item-not-found"


class SessionManager(omemo.SessionManager):
    xmpp = None  # set before create(), which calls the methods below

    async def _upload_bundle(self, bundle):
        payload = oldmemo.etree.serialize_bundle(bundle)
        try:
            await self.xmpp["xep_0060"].publish(
                self.xmpp.boundjid.bare, BUNDLES_NODE + str(bundle.device_id),
                id="current", payload=payload, options=open_access())
        except (IqError, IqTimeout) as e:
            raise omemo.BundleUploadFailed(repr(e)) from e

    async def _download_bundle(self, namespace, bare_jid, device_id):
        try:
            iq = await self.xmpp["xep_0060"].get_items(bare_jid, BUNDLES_NODE + str(device_id), max_items=1)
        except (IqError, IqTimeout) as e:
            if item_not_found(e):
                raise omemo.BundleNotFound(repr(e)) from e
            raise omemo.BundleDownloadFailed(repr(e)) from e
        items = list(iq["pubsub"]["items"])
        if not items:
            raise omemo.BundleNotFound(f"no item in {bare_jid}'s bundle node of device {device_id}")
        return oldmemo.etree.parse_bundle(items[0]["payload"], bare_jid, device_id)

    async def _delete_bundle(self, namespace, device_id):
        try:
            await self.xmpp["xep_0060"].delete_node(self.xmpp.boundjid.bare, BUNDLES_NODE + str(device_id))
        except (IqError, IqTimeout) as e:
            if not item_not_found(e):
                raise omemo.BundleDeletionFailed(repr(e)) from e

    async def _upload_device_list(self, namespace, device_list):
        payload = oldmemo.etree.serialize_device_list(device_list)
        try:
            await self.xmpp["xep_0060"].publish(
                self.xmpp.boundjid.bare, DEVICE_LIST_NODE,
                id="current", payload=payload, options=open_access())
        except (IqError, IqTimeout) as e:
            raise omemo.DeviceListUploadFailed(repr(e)) from e

    async def _download_device_list(self, namespace, bare_jid):
        try:
            iq = await self.xmpp["xep_0060"].get_items(bare_jid, DEVICE_LIST_NODE)
        except (IqError, IqTimeout) as e:
            if item_not_found(e):
                return {}
            raise omemo.DeviceListDownloadFailed(repr(e)) from e
        items = list(iq["pubsub"]["items"])
        if not items:
            return {}
        return oldmemo.etree.parse_device_list(items[-1]["payload"])

    async def _evaluate_custom_trust_level(self, device):
        return omemo.TrustLevel.TRUSTED  # blind trust

    async def _make_trust_decision(self, undecided, identifier):
        for device in undecided:
            await self.set_trust(device.bare_jid, device.identity_key, "blind")

    async def _send_message(self, message, bare_jid):
        # Key material only (handshake completion, heartbeats).
        send_encrypted(self.xmpp, bare_jid, oldmemo.etree.serialize_message(message))


def send_encrypted(xmpp, to, encrypted):
    msg = xmpp.make_message(mto=to, mtype="chat")
    msg.append(encrypted)
    msg.append(ET.Element("{urn:xmpp:hints}store"))
    msg.send()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True, help="full JID to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mech", default="SCRAM-SHA-256", help="SASL mechanism to force (slixmpp's sasl_mech)")
    p.add_argument("--ca-file", required=True, help="trust only this certificate (PEM)")
    p.add_argument("--timeout", type=float, required=True, help="seconds before the process gives up")
    args = p.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                        format="%(levelname)s %(name)s: %(message)s")

    xmpp = slixmpp.ClientXMPP(args.jid, args.password, sasl_mech=args.mech)
    xmpp.register_plugin("xep_0030")
    xmpp.register_plugin("xep_0060")
    xmpp.register_plugin("xep_0115")
    xmpp.ca_certs = args.ca_file
    loop = xmpp.loop
    done = loop.create_future()
    state = {"manager": None}
    tasks = set()  # asyncio keeps only weak references to tasks

    def spawn(coro):
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def finish(ok, error=None):
        if done.done():
            return
        if error is not None:
            emit(event="fatal", error=error)
        done.set_result(ok)

    # slixmpp 1.8 hands its tls-unique channel binding to SCRAM even on TLS
    # 1.3, where it does not exist (RFC 9266); without it, plain SCRAM.
    mechanisms = xmpp["feature_mechanisms"]
    credentials = mechanisms.sasl_callback

    def without_channel_binding(required, optional):
        values = credentials(required, optional)
        if "channel_binding" in values:
            values["channel_binding"] = None
        return values
    mechanisms.sasl_callback = without_channel_binding

    async def on_message(msg):
        encrypted = msg.xml.find(f"{{{NAMESPACE}}}encrypted")
        if encrypted is None or msg["type"] == "error":
            return
        manager = state["manager"]
        body = msg.xml.find("{jabber:client}body")
        event = {"event": "message", "from": str(msg["from"]),
                 "body": body.text if body is not None else None,
                 "sid": None, "plaintext": None, "error": None}
        try:
            sender = msg["from"].bare
            message = await oldmemo.etree.parse_message(encrypted, sender, xmpp.boundjid.bare, manager)
            event["sid"] = message.device_id
            plaintext, _device, _key = await manager.decrypt(message)
            if plaintext is not None:
                event["plaintext"] = plaintext.decode("utf-8")
        except Exception as e:  # reported to the test, which fails on it
            logging.exception("decryption failed")
            event["error"] = repr(e)
        emit(**event)

    async def run(cmd):
        name = cmd["cmd"]
        if name == "send":
            manager = state["manager"]
            messages, errors = await manager.encrypt(
                frozenset([cmd["to"]]), {NAMESPACE: cmd["text"].encode("utf-8")})
            if errors:
                logging.warning("non-critical encryption errors: %r", errors)
            message = next(m for m in messages if m.namespace == NAMESPACE)
            send_encrypted(xmpp, cmd["to"], oldmemo.etree.serialize_message(message))
            emit(event="sent", to=cmd["to"], devices=sorted(k.device_id for k, _ in message.keys))
        elif name == "quit":
            xmpp.disconnect()
            finish(True)
        else:
            raise ValueError(f"unknown command {name}")

    async def commands():
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                finish(False, "stdin closed")
                return
            try:
                await run(json.loads(line))
            except Exception as e:
                logging.exception("command failed")
                finish(False, f"{line.decode().strip()}: {e!r}")
                return

    async def on_session_start(_):
        try:
            xmpp.send_presence()
            SessionManager.xmpp = xmpp
            storage = MemoryStorage()
            manager = await SessionManager.create(
                [oldmemo.Oldmemo(storage)], storage, xmpp.boundjid.bare, None, "blind")
            await manager.after_history_sync()
            state["manager"] = manager
            own, _others = await manager.get_own_device_information()
            emit(event="ready", jid=str(xmpp.boundjid), device_id=own.device_id)
        except Exception as e:
            logging.exception("OMEMO setup failed")
            finish(False, f"OMEMO setup: {e!r}")
            return
        spawn(commands())

    def on_message_sync(msg):
        spawn(on_message(msg))

    xmpp.add_event_handler("session_start", on_session_start)
    xmpp.add_event_handler("message", on_message_sync)
    xmpp.add_event_handler("failed_auth", lambda _: finish(False, "authentication failed"))
    xmpp.add_event_handler("disconnected", lambda reason: finish(False, f"disconnected: {reason}"))
    loop.call_later(args.timeout, finish, False, f"timed out after {args.timeout}s")

    xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=True)
    ok = loop.run_until_complete(done)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
