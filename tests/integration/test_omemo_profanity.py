"""End-to-end encryption with real clients: two Profanity clients, driven
through tmux as people type (see test_muc_profanity.py), log in over TLS,
generate their OMEMO keys (`/omemo gen`: the device list and bundle go to
their PEP nodes), trust each other's keys (`/omemo trustmode blind`), and
one sends a message in an OMEMO chat (`/omemo start`).

How the wire is observed: parleyd does not log stanzas, and a third client
cannot see a one-to-one chat.  So the recipient goes offline after
publishing its keys, and the sender's message is stored by the server as
offline message: the stored <message/> is exactly what the server
received from the sender (plus its <delay/>).  It must hold an OMEMO
<encrypted/> element (eu.siacs.conversations.axolotl, or urn:xmpp:omemo:2)
and the typed text nowhere, in no <body/>.  Then the recipient comes back,
gets the offline message, and its screen shows the decrypted text.  This
also checks what OMEMO needs from the server: PEP publish with
publish-options and node configuration, the device list readable by the
contact, and the bundle fetched while its owner is offline.

Skipped only when profanity or tmux is missing or profanity was built
without OMEMO (scripts/deps.sh test installs Debian's, which has it)."""
import asyncio
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from parleytest import HOST, unique
from test_muc import fresh_user
from test_muc_profanity import Profanity
from test_pubsub import roster_friends

PROFANITY = shutil.which('profanity')
TMUX = shutil.which('tmux')

OMEMO_NS = ('eu.siacs.conversations.axolotl', 'urn:xmpp:omemo:2')


def _omemo_missing():
    if PROFANITY is None or TMUX is None:
        return 'profanity or tmux not installed (scripts/deps.sh test installs them)'
    try:
        out = subprocess.run([PROFANITY, '--version'], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return 'profanity --version failed: %s' % e
    if 'OMEMO support: Enabled' not in out:
        return 'this profanity was built without OMEMO'
    return None


MISSING = _omemo_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or '')


@pytest.fixture
def two_profanities(tmp_path):
    a = Profanity(tmp_path / 'sender')
    b = Profanity(tmp_path / 'recipient')
    yield a, b
    a.close()
    b.close()


async def shows_more(p, text, before, timeout=20):
    """Wait until text is on p's screen more than before times (a second
    login prints the same lines as the first)."""
    await wait_for(lambda: p.screen().count(text) > before, timeout,
                   '%r on the screen once more; the screen:\n%s' % (text, p.screen()))


async def connect(p, server, user):
    """/connect over STARTTLS (tls trust: the test's self-signed certificate)."""
    screen = p.screen()
    asked, logged = screen.count('Enter password'), screen.count('logged in successfully')
    p.type('/connect %s@%s server 127.0.0.1 port %d tls trust' % (user, HOST, server.port))
    await shows_more(p, 'Enter password', asked)
    p.type(server.password(user))
    await shows_more(p, 'logged in successfully', logged)


async def omemo_keys(p):
    """Blind trust, then the keys of this account (published to PEP)."""
    p.type('/omemo trustmode blind')
    p.type('/omemo gen')
    await p.shows('OMEMO crytographic materials generated', timeout=60)


def pep_items(server, reader, owner, node):
    """The items answer of owner's PEP node, asked by reader (a RawClient)."""
    from test_muc import iq
    return iq(reader, 'get', '%s@%s' % (owner, HOST),
              "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s'/></pubsub>" % node)


async def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        await asyncio.sleep(0.3)
    raise AssertionError('no %s within %ss' % (what, timeout))


def offline_stanzas(server, user):
    return [r[0] for r in server.db_query('SELECT stanza FROM offline_messages WHERE server_host = ? AND '
                                          'username = ? ORDER BY seq', (HOST, user))]


def test_omemo_message_between_two_profanities(server, run, two_profanities):
    from test_muc import connect as raw_connect
    sender_p, recipient_p = two_profanities
    sender, recipient = fresh_user(server, 'om'), fresh_user(server, 'om')
    roster_friends(server, sender, recipient)
    roster_friends(server, recipient, sender)
    secret = unique('the eagle lands at dawn ')

    async def go():
        # the recipient makes its keys, then leaves
        await recipient_p.shows("Type '/help'")
        await connect(recipient_p, server, recipient)
        await omemo_keys(recipient_p)
        watcher = raw_connect(server, sender)
        try:
            def devicelist():
                r = pep_items(server, watcher, recipient, 'eu.siacs.conversations.axolotl.devicelist')
                return r.get('type') == 'result' and 'device' in ET.tostring(r, encoding='unicode')
            await wait_for(devicelist, 20, "device list on the recipient's PEP node")
        finally:
            watcher.close()
        recipient_p.type('/disconnect')
        await asyncio.sleep(1.5)
        assert not offline_stanzas(server, recipient)

        # the sender makes its keys and writes in an OMEMO chat
        await sender_p.shows("Type '/help'")
        await connect(sender_p, server, sender)
        await omemo_keys(sender_p)
        sender_p.type('/omemo start %s@%s' % (recipient, HOST))
        await asyncio.sleep(3)
        sender_p.type(secret)
        stored = await wait_for(lambda: offline_stanzas(server, recipient), 20,
                                'offline message for the recipient (the sender screen:\n%s)' % sender_p.screen())
        assert len(stored) == 1, stored
        wire = stored[0]
        assert secret not in wire, 'the plaintext reached the server: %s' % wire
        msg = ET.fromstring(wire)
        encrypted = [e for e in msg.iter() if e.tag in ['{%s}encrypted' % ns for ns in OMEMO_NS]]
        assert encrypted, 'no OMEMO <encrypted/> in the message the server got: %s' % wire
        assert encrypted[0].find('{%s}payload' % encrypted[0].tag[1:].split('}')[0]) is not None, wire
        for body in msg.iter('{jabber:client}body'):
            assert secret not in (body.text or ''), wire

        # the recipient comes back and reads it, decrypted
        await connect(recipient_p, server, recipient)
        await asyncio.sleep(2)
        recipient_p.type('/msg %s@%s' % (sender, HOST))
        screen = await recipient_p.shows(secret, timeout=20)
        # profanity marks a message it decrypted with OMEMO by omemo.char ('~')
        lines = [ln for ln in screen.splitlines() if secret in ln]
        assert any(' ~ ' in ln for ln in lines), 'not shown as an OMEMO message: %s' % lines
    run(go(), timeout=240)
