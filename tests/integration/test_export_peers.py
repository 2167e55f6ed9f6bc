"""Going back: parleyctl export-xep0227 --for ejabberd and --for prosody.
Parley's users (with a roster, a pending subscription request and a PEP
bookmark, set through Parley itself) are exported, imported into a
private ejabberd 23.01 (ejabberdctl import_piefxis) and into a private
Prosody 0.12 (prosody-migrator from its xep0227 store to its internal
one), and log in there with their passwords (SCRAM-SHA-1 and PLAIN);
there the roster is theirs, bob gets alice's request, and (Prosody) the
bookmark is in PEP."""
import asyncio
import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import parleytest
from parleytest import (HOST, NS_ROSTER, Ejabberd, ejabberdctl, free_port, iq, items_of, login, logout, q,
                        tostr)
from test_pubsub import NS_PUBSUB, PubsubParleyd

PIE = 'urn:xmpp:pie:0'
SCRAM = 'urn:xmpp:pie:0#scram'
USERS = {('alice', HOST): 'Alice back 1', ('bob', HOST): 'bob back 2'}
BOOKMARKS = 'urn:xmpp:bookmarks:1'


async def no_auto_answer(c):
    """Leave subscription requests unanswered (slixmpp accepts them)."""
    c.auto_authorize = None


async def pending_request(server, user, requester):
    """user logs in (once) and gets requester's subscription request.
    Prosody sends it without a 'to', which slixmpp's roster events skip:
    it is caught as a stanza."""
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath
    requests = asyncio.Queue()

    async def prepare(c):
        c.auto_authorize = None
        c.register_handler(Callback('subscribe requests', MatchXPath('{jabber:client}presence'),
                                    lambda p: requests.put_nowait(p) if p['type'] == 'subscribe' else None))
    c = await login(server, user, host=HOST, password=USERS[(user, HOST)], resource='r', prepare=prepare)
    try:
        p = await asyncio.wait_for(requests.get(), 10)
        assert p['from'].bare == requester, p
    finally:
        await logout(c)


async def migrated(server):
    """What every peer must show after taking the export in: bob gets
    alice's pending request when he first comes online (a client that
    accepts it would end it), both log in with SCRAM-SHA-1 and PLAIN, and
    alice's roster has carol in Friends.  Returns alice, logged in."""
    await pending_request(server, 'bob', 'alice@' + HOST)
    for mech in ('SCRAM-SHA-1', 'PLAIN'):
        for user in ('alice', 'bob'):
            c = await login(server, user, host=HOST, password=USERS[(user, HOST)], mech=mech)
            await logout(c)
    a = await login(server, 'alice', host=HOST, password=USERS[('alice', HOST)], resource='r')
    try:
        el = await iq(a, 'get', None, "<query xmlns='%s'/>" % NS_ROSTER)
        items = {i.get('jid'): i for i in items_of(el, NS_ROSTER)}
        assert items['carol@example.org'].findtext(q(NS_ROSTER, 'group')) == 'Friends', tostr(el)
    except BaseException:
        await logout(a)
        raise
    return a


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A stopped parleyd whose alice has carol in her roster (group
    Friends), a bookmark in PEP and a request waiting at bob (who has dave
    in his roster)."""
    s = PubsubParleyd(tmp_path_factory.mktemp('parley-export-peers'), users=USERS)
    s.start_with_users()
    try:
        async def go():
            a = await login(s, 'alice', resource='r')
            el = await iq(a, 'set', None, "<query xmlns='jabber:iq:roster'><item jid='carol@example.org' "
                          "name='Carol'><group>Friends</group></item></query>")
            assert el.get('type') == 'result', tostr(el)
            el = await iq(a, 'set', None,
                          "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'>"
                          "<item id='room@conference.example.org'><conference xmlns='%s' name='Room' "
                          "autojoin='true'/></item></publish></pubsub>" % (BOOKMARKS, BOOKMARKS))
            assert el.get('type') == 'result', tostr(el)
            a.send_presence(pto='bob@' + HOST, ptype='subscribe')
            await iq(a, 'get', HOST, "<ping xmlns='urn:xmpp:ping'/>")
            await logout(a)
            # Prosody 0.12's xep0227 store reads the pending requests only
            # of a user who has roster items
            b = await login(s, 'bob', resource='r', prepare=no_auto_answer)
            el = await iq(b, 'set', None, "<query xmlns='jabber:iq:roster'><item jid='dave@example.org'/>"
                          "</query>")
            assert el.get('type') == 'result', tostr(el)
            await logout(b)
        with parleytest.event_loop() as lp:  # the run fixture is per test
            parleytest.runner(lp)(go(), 60)
    finally:
        s.finish()
    yield s


def test_export_for_ejabberd_encodes_twice(exported):
    s = exported
    out = s.dir / 'for-ejabberd.xml'
    r = s.ctl('export-xep0227', '--host', HOST, '--for', 'ejabberd', out)
    assert r.returncode == 0, (r.stdout, r.stderr)
    doc = ET.parse(out).getroot()
    users = {u.get('name'): u for u in doc.iter('{%s}user' % PIE)}
    creds = users['alice'].findall('{%s}scram-credentials' % SCRAM)
    assert [c.get('mechanism') for c in creds] == ['SCRAM-SHA-1'], tostr(users['alice'])
    key = creds[0].findtext('{%s}stored-key' % SCRAM)
    assert len(base64.b64decode(base64.b64decode(key))) == 20, key
    # the pending request, as ejabberd and Prosody write it
    p = users['bob'].find('{jabber:client}presence')
    assert p is not None and p.get('type') == 'subscribe' and p.get('from') == 'alice@' + HOST, \
        tostr(users['bob'])
    # PEP, as Prosody's XEP-0227 store writes it
    nodes = [i.get('node') for i in users['alice'].findall('{http://jabber.org/protocol/pubsub}pubsub/'
                                                           '{http://jabber.org/protocol/pubsub}items')]
    assert BOOKMARKS in nodes, tostr(users['alice'])
    configured = [c.get('node') for c in users['alice'].findall('{http://jabber.org/protocol/pubsub#owner}pubsub/'
                                                                '{http://jabber.org/protocol/pubsub#owner}configure')]
    assert BOOKMARKS in configured, tostr(users['alice'])
    # a Parley export keeps every hash, once encoded
    r = s.ctl('export-xep0227', '--host', HOST, s.dir / 'for-parley.xml')
    assert r.returncode == 0, r.stderr
    doc = ET.parse(s.dir / 'for-parley.xml').getroot()
    alice = [u for u in doc.iter('{%s}user' % PIE) if u.get('name') == 'alice'][0]
    assert len(alice.findall('{%s}scram-credentials' % SCRAM)) >= 2
    r = s.ctl('export-xep0227', '--for', 'openfire', s.dir / 'x.xml')
    assert r.returncode != 0 and 'usage' in r.stderr, (r.stdout, r.stderr)
    r = s.ctl('export-xep0227', '--for', 'prosody', s.dir / 'for-parley.xml')
    assert r.returncode != 0 and 'not a directory' in r.stderr, (r.stdout, r.stderr)


@pytest.mark.skipif(ejabberdctl() is None, reason='ejabberd is not installed (apt-get install ejabberd)')
def test_back_to_ejabberd(exported, run):
    s = exported
    ej = Ejabberd(HOST, None, {})
    # what its import stores the user's data through
    conf = ej.dir / 'etc' / 'ejabberd.yml'
    conf.write_text(conf.read_text().replace(
        '  mod_roster: {}\n', '  mod_roster: {}\n  mod_private: {}\n  mod_vcard: {}\n  mod_offline: {}\n'
        '  mod_privacy: {}\n  mod_blocking: {}\n'))
    out = ej.dir / 'parley.xml'
    r = s.ctl('export-xep0227', '--host', HOST, '--for', 'ejabberd', out)
    assert r.returncode == 0, (r.stdout, r.stderr)
    shutil.chown(str(out), 'ejabberd', 'ejabberd')
    ej.start()
    try:
        ej.ctl('import_piefxis', str(out))

        async def go():
            await logout(await migrated(ej))
        run(go(), timeout=90)
    finally:
        ej.stop()


class MigratedProsody(parleytest.ProsodyProcess):
    """prosody-migrator from a folder of USER@HOST.xml files (its xep0227
    store) into its internal store, and a private Prosody serving that."""

    def __init__(self, exported):
        # prosody-migrator runs as the prosody user: a folder it can reach
        # (not under pytest's private temporary root), owned by it
        self.dir = Path(tempfile.mkdtemp(prefix='parley-prosody-back-'))
        self.port = free_port()
        self.tls_port = self.port
        self.data = self.dir / 'data'
        self.data.mkdir()
        files = self.dir / 'xep0227'
        shutil.copytree(exported, files)
        for path in [self.dir] + list(self.dir.rglob('*')):
            shutil.chown(str(path), 'prosody', 'prosody')
        stores = '{ "accounts", "roster", "vcard", "private", "pep-pubsub" }'
        mig = self.dir / 'migrator.cfg.lua'
        mig.write_text(f'''-- written by tests/integration/test_export_peers.py
input {{ type = "xep0227"; hosts = {{ ["{HOST}"] = {stores} }} }}
output {{ type = "internal"; path = "{self.data}"; hosts = {{ ["{HOST}"] = {stores} }} }}
''')
        shutil.chown(str(mig), 'prosody', 'prosody')
        # Prosody's xep0227 store reads USER@HOST.xml from Prosody's own
        # data path (/var/lib/prosody, fixed in prosody-migrator): the files
        # are put there in a mount namespace of the migrator's own, so the
        # machine's data path is not touched.
        r = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-ec',
                            'mount --bind "$1" /var/lib/prosody; exec prosody-migrator --config "$2" input output',
                            'migrate', str(files), str(mig)], cwd=str(self.dir),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and 'Done!' in r.stdout + r.stderr, (r.stdout, r.stderr)
        self.migrator_output = r.stdout + r.stderr
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + HOST, '-addext', 'subjectAltName=DNS:' + HOST,
             '-keyout', str(self.dir / 'key.pem'), '-out', str(self.dir / 'cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        self.config = self.dir / 'prosody.cfg.lua'
        self.config.write_text(f'''-- written by tests/integration/test_export_peers.py
daemonize = false
run_as_root = true
pidfile = "{self.dir}/prosody.pid"
data_path = "{self.data}"
log = {{ debug = "{self.dir}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
s2s_ports = {{ }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "pep"; "private" }}
modules_disabled = {{ "s2s"; "c2s_limits" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
allow_registration = false
VirtualHost "{HOST}"
  ssl = {{ certificate = "{self.dir}/cert.pem"; key = "{self.dir}/key.pem" }}
''')
        self.proc = None

    def stop(self):
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.skipif(shutil.which('prosody-migrator') is None or shutil.which('unshare') is None
                    or os.geteuid() != 0 or not os.path.isdir('/var/lib/prosody'),
                    reason='needs prosody (prosody-migrator), unshare and root (a private mount of '
                    '/var/lib/prosody)')
def test_back_to_prosody(exported, run):
    s = exported
    files = s.dir / 'for-prosody'
    files.mkdir()
    r = s.ctl('export-xep0227', '--host', HOST, '--for', 'prosody', files)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert sorted(p.name for p in files.iterdir()) == ['alice@%s.xml' % HOST, 'bob@%s.xml' % HOST]
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in files.iterdir())
    p = MigratedProsody(files)
    p.start()
    try:
        async def go():
            a = await migrated(p)
            try:
                el = await iq(a, 'get', None, "<pubsub xmlns='%s'><items node='%s'/></pubsub>"
                              % (NS_PUBSUB, BOOKMARKS))
                ids = [i.get('id') for i in items_of(el, NS_PUBSUB)]
                assert ids == ['room@conference.example.org'], tostr(el)
            finally:
                await logout(a)
        run(go(), timeout=90)
    finally:
        p.stop()
