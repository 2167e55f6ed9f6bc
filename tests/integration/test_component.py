"""External components (XEP-0114): the handshake, its failures, routing
both ways, a second connection of the same domain (replace and refuse),
a component sending from a domain it does not own, stanzas to a component
that is not connected, disco#items, parleyctl components and the
configuration's errors."""
import time

import pytest

import parleytest
from parleytest import (HOST, NS_CLIENT, NS_COMPONENT, NS_DISCO_ITEMS, NS_PING, RawClient,
                        RawComponent, q, stanza_error, tostr, unique)

ECHO = 'echo.' + HOST           # on_conflict: replace (the default)
SOLO = 'solo.' + HOST           # on_conflict: refuse
FILED = 'filed.' + HOST         # its secret in a file
QUIET = 'quiet.' + HOST         # never connected by the tests (disco: false)
SECRETS = {ECHO: 'echo-secret', SOLO: 'solo-secret', FILED: 'filed-secret', QUIET: 'quiet-secret'}

COMPONENTS = """\
  %s: { secret: "%s", name: "Echo service" }
  %s: { secret: "%s", on_conflict: refuse }
  %s: { secret_file: filed.secret }
  %s: { secret: "%s", disco: false }
""" % (ECHO, SECRETS[ECHO], SOLO, SECRETS[SOLO], FILED, QUIET, SECRETS[QUIET])


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp('parley-comp')
    (d / 'filed.secret').write_text(SECRETS[FILED] + '\n')
    srv = parleytest.Parleyd(d, components=COMPONENTS)
    srv.start_with_users()
    yield srv
    srv.finish()


@pytest.fixture
def comps(server):
    made = []

    def make(domain=ECHO, secret=None, expect='ok', to=None):
        c = RawComponent(server.component_port, domain, timeout=10)
        made.append(c)
        got = c.handshake(SECRETS[domain] if secret is None else secret, to=to)
        assert got == expect, 'handshake of %s: expected %s, got %s' % (domain, expect, got)
        return c
    yield make
    for c in made:
        c.close()


@pytest.fixture
def user(server):
    made = []

    def make(name='alice'):
        c = RawClient(server.port, timeout=10)
        c.login(name, server.password(name), resource=unique('r'))
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def _wait_gone(server, domain, deadline=10):
    """Poll parleyctl components until domain shows as not connected."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        out = server.ctl('components').stdout
        if any(ln.split()[:1] == [domain] and 'not connected' in ln for ln in out.splitlines()):
            return
        time.sleep(0.05)
    raise AssertionError('%s still connected: %s' % (domain, out))


def test_handshake_success(comps):
    c = comps()
    assert c.header.get('from') == ECHO
    assert len(c.header.get('id', '')) >= 16


def test_handshake_uppercase_hex_accepted(server):
    c = RawComponent(server.component_port, ECHO, timeout=10)
    try:
        header = c.open_component()
        c.send('<handshake>%s</handshake>'
               % parleytest.component_digest(header['id'], SECRETS[ECHO]).upper())
        el = c.next()
        assert el is not None and el.tag == q(NS_COMPONENT, 'handshake'), tostr(el)
    finally:
        c.close()


def test_bad_secret(comps, witness):
    c = comps(secret='wrong', expect='not-authorized')
    assert c.wait_closed(10)
    witness.check()


def test_unknown_domain(comps, witness):
    c = comps(to='nobody.' + HOST, expect='host-unknown')
    assert c.wait_closed(10)
    # a virtual host is not a component either
    comps(to=HOST, expect='host-unknown')
    witness.check()


def test_wrong_namespace(server):
    c = RawComponent(server.component_port, ECHO, timeout=10)
    try:
        c.send("<stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s'>"
               % (parleytest.NS_STREAM, ECHO))
        assert c.stream_error() == 'invalid-namespace'
    finally:
        c.close()


def test_stanza_before_handshake(server):
    c = RawComponent(server.component_port, ECHO, timeout=10)
    try:
        c.open_component()
        c.send("<message from='%s' to='alice@%s'><body>x</body></message>" % (ECHO, HOST))
        assert c.stream_error() == 'not-authorized'
    finally:
        c.close()


def test_stream_error_from_the_component(server, comps):
    c = comps()
    c.send("<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
           "</stream:error></stream:stream>")
    assert c.stream_error() == 'closed'      # no error answers an error
    _wait_gone(server, ECHO)
    assert 'the component sent the stream error <undefined-condition/>' in server.log()


def test_secret_file(comps):
    comps(FILED)


def test_message_and_iq_both_ways(comps, user):
    comp = comps()
    alice = user()
    body = unique('to-comp-')
    alice.send("<message to='bot@%s' type='chat' id='m1'><body>%s</body></message>" % (ECHO, body))
    got = comp.wait_stanza('message', lambda e: e.findtext(q(NS_COMPONENT, 'body')) == body)
    assert got.get('from') == alice.jid and got.get('to') == 'bot@' + ECHO, tostr(got)

    # the component answers as a JID of its domain
    reply = unique('from-comp-')
    comp.send("<message from='bot@%s/x' to='%s' type='chat'><body>%s</body></message>"
              % (ECHO, alice.jid, reply))
    m = alice.wait_message(reply)
    assert m.get('from') == 'bot@%s/x' % ECHO

    # an iq from the user; the component answers it
    alice.send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % ECHO)
    iq = comp.wait_stanza('iq', lambda e: e.get('id') == 'v1')
    assert iq.get('from') == alice.jid and iq.get('type') == 'get'
    assert iq.find('{jabber:iq:version}query') is not None, tostr(iq)
    comp.send("<iq type='result' id='v1' from='%s' to='%s'><query xmlns='jabber:iq:version'>"
              "<name>echo</name></query></iq>" % (ECHO, alice.jid))
    ans = alice.wait_iq('v1')
    assert ans.get('type') == 'result' and ans.get('from') == ECHO, tostr(ans)
    assert ans.findtext('{jabber:iq:version}query/{jabber:iq:version}name') == 'echo'

    # an iq from the component to the server (ping), answered back to it
    comp.send("<iq type='get' id='p1' from='%s' to='%s'><ping xmlns='%s'/></iq>" % (ECHO, HOST, NS_PING))
    pong = comp.wait_stanza('iq', lambda e: e.get('id') == 'p1')
    assert pong.get('type') == 'result' and pong.get('to') == ECHO, tostr(pong)

    # an iq from the component to the user's full JID
    comp.send("<iq type='get' id='p2' from='%s' to='%s'><ping xmlns='%s'/></iq>"
              % (ECHO, alice.jid, NS_PING))
    got = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'p2')
    assert got.get('from') == ECHO and got.get('type') == 'get'
    alice.send("<iq type='result' id='p2' to='%s'/>" % ECHO)
    res = comp.wait_stanza('iq', lambda e: e.get('id') == 'p2')
    assert res.get('type') == 'result' and res.get('from') == alice.jid


def test_presence_both_ways_and_subscription(comps, user):
    comp = comps()
    bob = user('bob')
    # directed presence to the component
    bob.send("<presence to='room@%s/bob'/>" % ECHO)
    p = comp.wait_stanza('presence', lambda e: e.get('to') == 'room@%s/bob' % ECHO)
    assert p.get('from') == bob.jid and p.get('type') is None
    # presence from the component to the user
    comp.send("<presence from='room@%s/bot' to='%s'/>" % (ECHO, bob.jid))
    got = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('from') == 'room@%s/bot' % ECHO)
    assert got.get('type') is None

    # a subscription to the component's JID (bob asks for his roster first,
    # so that he gets its pushes)
    bob.iq('get', "<query xmlns='jabber:iq:roster'/>")
    bob.send("<presence to='%s' type='subscribe'/>" % ECHO)
    sub = comp.wait_stanza('presence', lambda e: e.get('type') == 'subscribe')
    assert sub.get('from') == 'bob@' + HOST, tostr(sub)
    comp.send("<presence from='%s' to='bob@%s' type='subscribed'/>" % (ECHO, HOST))
    comp.send("<presence from='%s' to='bob@%s'/>" % (ECHO, HOST))
    # the presence of the component, and the roster push that comes once
    # the subscription is stored, in either order: a roster get waits for
    # the push
    seen = set()

    def both(e):
        if e.tag == q(NS_CLIENT, 'presence') and e.get('from') == ECHO and e.get('type') is None:
            seen.add('presence')
        if e.tag == q(NS_CLIENT, 'iq') and e.get('type') == 'set' and any(
                i.get('jid') == ECHO and i.get('subscription') in ('to', 'both')
                for i in e.iter('{jabber:iq:roster}item')):
            seen.add('push')
        return seen == {'presence', 'push'}
    bob.wait_for(both, what='presence of the component and the roster push')
    roster = bob.iq('get', "<query xmlns='jabber:iq:roster'/>")
    items = {i.get('jid'): i.get('subscription')
             for i in roster.iter('{jabber:iq:roster}item')}
    assert items.get(ECHO) in ('to', 'both'), tostr(roster)
    # a probe of the component's presence reaches it when bob logs in again
    bob2 = user('bob')
    probe = comp.wait_stanza('presence', lambda e: e.get('type') == 'probe')
    assert probe.get('from') == 'bob@' + HOST and probe.get('to') == ECHO
    bob.send("<presence to='%s' type='unsubscribe'/>" % ECHO)
    comp.wait_stanza('presence', lambda e: e.get('type') == 'unsubscribe')
    bob2.close()


def test_replace(comps, user):
    first = comps()
    second = comps()
    assert first.stream_error() == 'conflict'
    assert first.wait_closed(10)
    alice = user()
    body = unique('after-replace-')
    alice.send("<message to='%s'><body>%s</body></message>" % (ECHO, body))
    got = second.wait_stanza('message', lambda e: e.findtext(q(NS_COMPONENT, 'body')) == body)
    assert got.get('from') == alice.jid


def test_refuse(comps, user):
    first = comps(SOLO)
    comps(SOLO, expect='conflict')
    alice = user()
    body = unique('after-refuse-')
    alice.send("<message to='%s'><body>%s</body></message>" % (SOLO, body))
    first.wait_stanza('message', lambda e: e.findtext(q(NS_COMPONENT, 'body')) == body)


def test_invalid_from(server, comps, user, witness):
    comp = comps()
    comp.send("<message from='mallory@%s' to='alice@%s'><body>spoof</body></message>" % (HOST, HOST))
    assert comp.stream_error() == 'invalid-from'
    assert comp.wait_closed(10)
    comp2 = comps()
    comp2.send("<message from='%s' to='alice@%s'><body>x</body></message>" % (SOLO, HOST))
    assert comp2.stream_error() == 'invalid-from'
    witness.check()
    _wait_gone(server, ECHO)
    # the domain comes back with a new connection
    comps()


def test_addressing_errors(comps, witness):
    comp = comps()
    comp.send("<message from='%s' to='@@bad@@'><body>x</body></message>" % ECHO)
    err = comp.wait_stanza('message', lambda e: e.get('type') == 'error')
    assert err.find('{%s}error/{urn:ietf:params:xml:ns:xmpp-stanzas}jid-malformed' % NS_COMPONENT) \
        is not None, tostr(err)
    assert err.get('from') is None and err.get('to') == ECHO, tostr(err)
    comp.send("<iq from='%s' to='%s' id='noop'><ping xmlns='%s'/></iq>" % (ECHO, HOST, NS_PING))
    err = comp.wait_stanza('iq', lambda e: e.get('id') == 'noop')
    assert err.get('type') == 'error', tostr(err)
    comp.send("<message from='%s'><body>no to</body></message>" % ECHO)
    assert comp.stream_error() == 'improper-addressing'
    witness.check()


def test_offline_component_bounces(server, user):
    _wait_gone(server, QUIET)
    alice = user()
    alice.send("<message to='x@%s' id='off1' type='chat'><body>hello?</body></message>" % QUIET)
    err = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('id') == 'off1')
    assert stanza_error(err) == 'service-unavailable', tostr(err)
    iq = alice.iq('get', "<query xmlns='jabber:iq:version'/>", to=QUIET)
    assert stanza_error(iq) == 'service-unavailable', tostr(iq)


def test_disco_items_lists_connected(comps, user, server):
    comps()
    alice = user()
    res = alice.iq('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=HOST)
    items = {i.get('jid'): i.get('name') for i in res.iter(q(NS_DISCO_ITEMS, 'item'))}
    assert items.get(ECHO) == 'Echo service', tostr(res)
    assert QUIET not in items and SOLO not in items, tostr(res)


def test_parleyctl_components_and_status(comps, user, server):
    comp = comps()
    alice = user()
    for i in range(3):
        alice.send("<message to='%s'><body>n%d</body></message>" % (ECHO, i))
    comp.wait_stanza('message', lambda e: e.findtext(q(NS_COMPONENT, 'body')) == 'n2')
    r = server.ctl('components')
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.split()[:1] == [ECHO]]
    assert line and '127.0.0.1' in line[0], r.stdout
    assert int(line[0].split()[-1]) >= 3, r.stdout     # stanzas out
    quiet = [ln for ln in r.stdout.splitlines() if ln.split()[:1] == [QUIET]]
    assert quiet and 'not connected' in quiet[0], r.stdout
    import json
    j = server.ctl('components', '--json')
    assert j.returncode == 0, j.stderr
    data = {c['domain']: c for c in json.loads(j.stdout)}
    assert data[ECHO]['connected'] and data[ECHO]['stanzas_out'] >= 3
    assert not data[QUIET]['connected']
    st = server.ctl('status').stdout
    assert 'components: ' in st and 'of 4 configured' in st, st
    stats = json.loads(server.ctl('stats', '--json').stdout)['components']
    assert stats['configured'] == 4 and stats['connected'] >= 1 and stats['stanzas_out'] >= 3, stats
    assert 'components: ' in server.ctl('stats').stdout


def test_oversized_stanza(server, comps, witness):
    comp = comps()
    comp.send_slowly("<message from='%s' to='alice@%s'><body>%s</body></message>"
                     % (ECHO, HOST, 'x' * (70 * 1024)))
    assert comp.stream_error() == 'policy-violation'
    witness.check()


@pytest.mark.parametrize('entry,needle', [
    ('  bad.example: { secret_file: missing.secret }\n', "key 'components.bad.example.secret_file'"),
    ('  bad.example: { secret: a, secret_file: b }\n', 'not both'),
    ('  bad.example: {}\n', 'secret or secret_file is required'),
    ('  bad.example: { secret: a, on_conflict: maybe }\n', 'on_conflict'),
    ('  %s: { secret: a }\n' % HOST, 'is a virtual host'),
    ('  bad.example: { secret: a, colour: red }\n', 'colour'),
])
def test_config_errors(server, tmp_path, entry, needle):
    text = server.config.read_text()
    head, _, _ = text.partition('components:\n')
    bad = tmp_path / 'bad.yml'
    bad.write_text(head + 'components:\n' + entry)
    r = server.ctl('config-check', bad)
    assert r.returncode != 0, r.stdout
    msg = r.stdout + r.stderr
    assert needle in msg and 'bad.yml:' in msg, msg


def test_reload_adds_and_removes(server, comps, user):
    solo = comps(SOLO)
    extra = 'extra.' + HOST
    SECRETS[extra] = 'extra-secret'
    old = server.components
    try:
        comps(extra, expect='host-unknown')
        server.components = (old.replace('  %s: { secret: "%s", on_conflict: refuse }\n'
                                          % (SOLO, SECRETS[SOLO]), '')
                             + '  %s: { secret: "%s" }\n' % (extra, SECRETS[extra]))
        server.write_config()
        r = server.ctl('reload')
        assert r.returncode == 0, r.stdout + r.stderr
        assert 'component %s: removed (disconnected)' % SOLO in r.stdout, r.stdout
        assert 'component %s: added' % extra in r.stdout, r.stdout
        assert solo.stream_error() == 'host-gone'
        comp = comps(extra)
        alice = user()
        alice.send("<message to='%s'><body>new</body></message>" % extra)
        comp.wait_stanza('message', lambda e: e.findtext(q(NS_COMPONENT, 'body')) == 'new')
        # the removed domain is not served any more (no s2s here: remote-server-not-found)
        alice.send("<message to='%s' id='gone1'><body>x</body></message>" % SOLO)
        err = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('id') == 'gone1')
        assert stanza_error(err) == 'remote-server-not-found', tostr(err)
        comps(SOLO, expect='host-unknown')
    finally:
        server.components = old
        server.write_config()
        r = server.ctl('reload')
        assert r.returncode == 0, r.stdout + r.stderr
    comps(SOLO)


def test_slixmpp_component(server, run):
    """A component written with slixmpp's ComponentXMPP (another
    implementation of the handshake) talks with a slixmpp client."""
    import asyncio
    import slixmpp

    async def scenario():
        comp = slixmpp.ComponentXMPP(FILED, SECRETS[FILED], '127.0.0.1', server.component_port)
        comp.auto_reconnect = False
        comp.whitespace_keepalive = False
        started = asyncio.get_running_loop().create_future()
        comp.add_event_handler('session_start', lambda e: started.done() or started.set_result(True))

        def echo(msg):
            if msg['type'] in ('chat', 'normal') and msg['body']:
                msg.reply('echo: %s' % msg['body']).send()
        comp.add_event_handler('message', echo)
        comp.connect()
        await asyncio.wait_for(started, 15)
        alice = await parleytest.login(server, 'alice', resource=unique('slix'))
        try:
            alice.send_message(mto='bot@' + FILED, mbody='ping', mtype='chat')
            while True:
                m = await asyncio.wait_for(alice.messages.get(), 15)
                if m['from'].bare == 'bot@' + FILED:
                    break
            assert m['body'] == 'echo: ping', m
        finally:
            await parleytest.logout(alice)
            comp.disconnect()
    run(scenario(), timeout=60)


class TightParleyd(parleytest.Parleyd):
    """Components with a short handshake deadline and a small output queue."""

    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        assert 'handshake_timeout: 30s' in text, 'the harness configuration changed'
        text = text.replace('handshake_timeout: 30s', 'handshake_timeout: 2s')
        text = text.replace('  max_stanza_size: 64K\n', '  max_stanza_size: 64K\n  max_output: 64K\n')
        self.config.write_text(text)


@pytest.fixture(scope='module')
def tight(tmp_path_factory):
    d = tmp_path_factory.mktemp('parley-comp-tight')
    (d / 'filed.secret').write_text(SECRETS[FILED] + '\n')
    srv = TightParleyd(d, components=COMPONENTS)
    srv.start_with_users()
    yield srv
    srv.finish()


def test_handshake_deadline(tight):
    alice = RawClient(tight.port, timeout=10)
    c = RawComponent(tight.component_port, ECHO, timeout=10)
    try:
        alice.login('alice', tight.password('alice'))
        assert c.open_component() is not None     # header answered, then no handshake
        assert c.stream_error(timeout=20) == 'connection-timeout'
        assert alice.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'
    finally:
        c.close()
        alice.close()


def _drain(client, wait=0.01):
    """Read what has arrived (kept for wait_for) without waiting long."""
    import socket
    try:
        while not client.closed:
            client._read_some(wait)
    except (socket.timeout, TimeoutError):
        pass


def test_component_that_stops_reading_is_disconnected(tight):
    alice = RawClient(tight.port, timeout=10)
    slow = RawComponent(tight.component_port, ECHO, timeout=10, rcvbuf=4096)
    try:
        alice.login('alice', tight.password('alice'))
        assert slow.handshake(SECRETS[ECHO]) == 'ok'
        # type='error': what is still queued for the component when it is
        # cut off is not bounced back to alice, whose output queue has the
        # same 64K cap and would overflow while the machine is busy
        flood = ("<message to='bot@%s' type='error'><body>%s</body></message>" % (ECHO, 'z' * 1000)) * 50
        deadline = time.monotonic() + 30
        while 'peer not reading' not in tight.log() and time.monotonic() < deadline:
            alice.send(flood)
            _drain(alice)
        assert 'peer not reading' in tight.log(), 'the server kept buffering for a component that does not read'
        _drain(alice)
        _wait_gone(tight, ECHO)
        # alice is fine, and what she sends now bounces
        alice.send("<message to='bot@%s' id='after' type='chat'><body>x</body></message>" % ECHO)
        err = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('id') == 'after',
                             timeout=20)
        assert stanza_error(err) == 'service-unavailable', tostr(err)
    finally:
        slow.close()
        alice.close()
    again = RawComponent(tight.component_port, ECHO, timeout=10)
    try:
        assert again.handshake(SECRETS[ECHO]) == 'ok'
    finally:
        again.close()


class LimitedParleyd(parleytest.Parleyd):
    """At most 2 connections per address (limits.max_connections_per_ip)."""

    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        assert 'max_connections_per_ip: 0' in text, 'the harness configuration changed'
        self.config.write_text(text.replace('max_connections_per_ip: 0',
                                            'max_connections_per_ip: 2'))


def test_component_connections_per_address_are_limited(tmp_path):
    """Two component connections from 127.0.0.1 are taken (one open, one
    in its handshake), a third is closed at once; once one ends, a new
    one is taken again.  Client connections count apart."""
    (tmp_path / 'filed.secret').write_text(SECRETS[FILED] + '\n')
    srv = LimitedParleyd(tmp_path, components=COMPONENTS)
    srv.start_with_users()
    made = []
    try:
        first = RawComponent(srv.component_port, ECHO, timeout=10)
        made.append(first)
        assert first.handshake(SECRETS[ECHO]) == 'ok'
        second = RawComponent(srv.component_port, FILED, timeout=10)
        made.append(second)
        assert second.open_component() is not None
        third = RawComponent(srv.component_port, FILED, timeout=10)
        made.append(third)
        assert third.open_component() is None
        assert 'already 2 component connections from that address' in srv.log()
        alice = RawClient(srv.port, timeout=10)
        made.append(alice)
        alice.login('alice', srv.password('alice'))
        second.close()
        deadline = time.monotonic() + 10
        while True:
            again = RawComponent(srv.component_port, FILED, timeout=10)
            made.append(again)
            if again.open_component() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert again.header is not None, 'no new component connection taken after one ended'
        again.send('<handshake>%s</handshake>'
                   % parleytest.component_digest(again.header['id'], SECRETS[FILED]))
        el = again.next()
        assert el is not None and el.tag == parleytest.q(NS_COMPONENT, 'handshake'), el
    finally:
        for c in made:
            c.close()
        srv.finish()
