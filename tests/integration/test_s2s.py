"""Federation: two parleyd instances (a.test and b.test) on loopback,
names resolved through the s2s static host map; STARTTLS and dialback
with self-signed certificates."""
import asyncio
import contextlib
import hashlib
import hmac
import os
import signal
import socket
import threading
import time

import pytest

from parleytest import (NS_DIALBACK, NS_STANZA_ERR, NS_STREAM, NS_TLS, FedParleyd, RawServer,
                        default_s2s_port, free_port, iq, login, logout, next_message, q, stanza_error,
                        started, tostr, unique)

A, B = 'a.test', 'b.test'
A2 = 'a2.test'          # a second domain of a.test's server
DOWN = 'down.test'      # the map points at a closed port
SILENT = 'silent.test'  # the map points at a port that accepts and never answers
SILENT2 = 'silent2.test'  # the same port, for the queue limit
SILENT3 = 'silent3.test'  # the same port, for parleyctl s2s-close
SECRET_B = b'the dialback secret of b.test, for the raw tests'


class Silent:
    """A TCP port that accepts connections and never says anything."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture(scope='module')
def fed(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2s')
    silent = Silent()
    closed_port = free_port()
    pa, pb = free_port(), free_port()
    (base / 'b-secret').write_bytes(SECRET_B)
    a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret', ('anna', A): 'anna-secret'},
                   peers={B: pb, DOWN: closed_port, SILENT: silent.port, SILENT2: silent.port,
                          SILENT3: silent.port},
                   s2s_port=pa, s2s={'connect_timeout': '3s', 'max_queue': '5'},
                   more_domains=[A2])
    b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret', ('bea', B): 'bea-secret'},
                   peers={A: pa, A2: pa}, s2s_port=pb,
                   s2s={'dialback_secret_file': str(base / 'b-secret')})
    with contextlib.closing(silent), started(a, b):
        yield a, b


def error_of(msg):
    """The condition of a slixmpp message/iq error."""
    return msg['error']['condition']


def test_messages_both_ways(fed, run):
    a, b = fed

    async def go():
        alice = await login(a, 'alice', host=A, resource='m')
        bob = await login(b, 'bob', host=B, resource='m')
        body = unique('to b ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        m = await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
        assert m['from'] == alice.boundjid
        back = unique('to a ')
        bob.send_message(mto=str(alice.boundjid), mbody=back, mtype='chat')
        m = await next_message(alice, pred=lambda m: m['body'] == back, timeout=15)
        assert m['from'] == bob.boundjid
        await logout(alice, bob)
    run(go(), timeout=60)
    listing = a.ctl('s2s-list')
    assert listing.returncode == 0, listing.stderr
    assert 'out\t%s\t%s' % (B, A) in listing.stdout, listing.stdout
    assert 'dialback' in listing.stdout, listing.stdout


def test_presence_subscription_across_servers(fed, run):
    """alice@a.test subscribes to bea@b.test; both clients accept and
    subscribe back (slixmpp's defaults): each ends up seeing the other
    online."""
    a, b = fed

    async def go():
        alice = await login(a, 'alice', host=A, resource='p')
        bea = await login(b, 'bea', host=B, resource='p')
        seen = {'alice': asyncio.Queue(), 'bea': asyncio.Queue()}
        alice.add_event_handler('presence_available',
                                lambda p: seen['alice'].put_nowait(p['from'].bare))
        bea.add_event_handler('presence_available',
                              lambda p: seen['bea'].put_nowait(p['from'].bare))
        alice.send_presence(pto='bea@' + B, ptype='subscribe')

        async def wait_seen(who, jid):
            while True:
                if await asyncio.wait_for(seen[who].get(), 20) == jid:
                    return
        await wait_seen('alice', 'bea@' + B)
        await wait_seen('bea', 'alice@' + A)
        # both rosters say both
        for c, other in ((alice, 'bea@' + B), (bea, 'alice@' + A)):
            deadline = time.monotonic() + 10
            while True:
                el = await iq(c, 'get', None, "<query xmlns='jabber:iq:roster'/>")
                items = [i for i in el.iter('{jabber:iq:roster}item') if i.get('jid') == other]
                if items and items[0].get('subscription') == 'both':
                    break
                assert time.monotonic() < deadline, tostr(el)
                await asyncio.sleep(0.1)
        await logout(alice, bea)
        # a new session of alice gets bea's presence again (a probe crosses)
        bea2 = await login(b, 'bea', host=B, resource='p2')
        got = asyncio.Queue()

        async def listen(c):
            c.add_event_handler('presence_available', lambda p: got.put_nowait(p['from'].bare))
        alice2 = await login(a, 'alice', host=A, resource='p2', prepare=listen)
        while await asyncio.wait_for(got.get(), 20) != 'bea@' + B:
            pass
        await logout(alice2, bea2)
    run(go(), timeout=90)


def test_blocked_contact_on_another_server_gets_no_presence(fed, run):
    """anna@a.test and bob@b.test share presence; anna blocks bob (XEP-0191):
    her next presence broadcast does not cross to him."""
    a, b = fed

    async def go():
        anna = await login(a, 'anna', host=A, resource='blk')
        bob = await login(b, 'bob', host=B, resource='blk')
        seen = asyncio.Queue()
        bob.add_event_handler('presence_available',
                              lambda p: seen.put_nowait((p['from'].bare, p['status'])))

        async def wait_status(status):
            while await seen.get() != ('anna@' + A, status):
                pass
        anna.send_presence(pto='bob@' + B, ptype='subscribe')
        deadline = time.monotonic() + 20
        while True:
            el = await iq(anna, 'get', None, "<query xmlns='jabber:iq:roster'/>")
            items = [i for i in el.iter('{jabber:iq:roster}item') if i.get('jid') == 'bob@' + B]
            if items and items[0].get('subscription') == 'both':
                break
            assert time.monotonic() < deadline, tostr(el)
            await asyncio.sleep(0.1)
        anna.send_presence(pstatus='before the block')
        await asyncio.wait_for(wait_status('before the block'), 20)
        el = await iq(anna, 'set', None,
                      "<block xmlns='urn:xmpp:blocking'><item jid='bob@%s'/></block>" % B)
        assert el.get('type') == 'result', tostr(el)
        anna.send_presence(pstatus='after the block')
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(wait_status('after the block'), 3)
        await logout(anna, bob)
    run(go(), timeout=90)


def test_iq_errors_for_remote_users_and_servers(fed, run):
    a, b = fed

    async def go():
        alice = await login(a, 'alice', host=A, resource='i')
        # an unknown user of a reachable server: its server answers
        el = await iq(alice, 'get', 'nobody@%s/x' % B, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert el.get('type') == 'error' and stanza_error(el) == 'service-unavailable', tostr(el)
        assert el.get('from') == 'nobody@%s/x' % B, tostr(el)
        # a server that refuses connections: remote-server-not-found
        el = await iq(alice, 'get', 'x@' + DOWN, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        # backing off: the next one bounces at once
        t0 = time.monotonic()
        el = await iq(alice, 'get', 'y@' + DOWN, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        assert time.monotonic() - t0 < 1.0
        # parleyctl s2s-list shows the back-off: the condition, until
        # when, the seconds left (s2s.backoff is 5 s here)
        rows = [ln.split('\t') for ln in a.ctl('s2s-list').stdout.splitlines()]
        backoff = [r for r in rows if r[0] == 'backoff' and r[1] == DOWN]
        assert len(backoff) == 1, rows
        assert backoff[0][4] == 'remote-server-not-found' and 0 < int(backoff[0][6]) <= 5, rows
        await logout(alice)
    run(go(), timeout=60)


def test_silent_peer_stanzas_bounce_with_timeout(fed, run):
    """The map points at a port that accepts and never answers: queued
    stanzas (a message and an iq) bounce with remote-server-timeout once
    s2s.connect_timeout (3 s) passes, and other users keep working."""
    a, b = fed

    async def go():
        alice = await login(a, 'alice', host=A, resource='s')
        anna = await login(a, 'anna', host=A, resource='s')
        errors = asyncio.Queue()
        alice.add_event_handler('message_error', errors.put_nowait)
        body = unique('into the void ')
        alice.send_message(mto='x@' + SILENT, mbody=body, mtype='chat')
        pending = asyncio.ensure_future(
            iq(alice, 'get', 'x@' + SILENT, "<ping xmlns='urn:xmpp:ping'/>", timeout=20))
        # meanwhile: local traffic and federation with b.test go on
        hello = unique('still here ')
        anna.send_message(mto='alice@' + A, mbody=hello, mtype='chat')
        await next_message(alice, pred=lambda m: m['body'] == hello)
        m = await asyncio.wait_for(errors.get(), 20)
        assert m['body'] == body and error_of(m) == 'remote-server-timeout', m
        el = await pending
        assert stanza_error(el) == 'remote-server-timeout', tostr(el)
        await logout(alice, anna)
    run(go(), timeout=60)
    assert 'queued stanzas bounce with <remote-server-timeout/>' in a.log()


def s2s_open_tls(server, origin):
    """A raw peer claiming origin, on TLS; returns it after the
    post-TLS features."""
    r = RawServer(server.s2s_port, origin, server.domain, timeout=10)
    f = r.open()
    assert f.find(q(NS_TLS, 'starttls')) is not None, tostr(f)
    r.send("<starttls xmlns='%s'/>" % NS_TLS)
    el = r.wait_for(lambda e: e.tag.startswith('{%s}' % NS_TLS), what='STARTTLS answer')
    assert el.tag == q(NS_TLS, 'proceed'), tostr(el)
    r._wrap()
    r.open()
    return r


def test_stream_without_tls_is_refused(fed, run):
    a, b = fed
    r = RawServer(a.s2s_port, 'evil.test', A)
    f = r.open()
    starttls = f.find(q(NS_TLS, 'starttls'))
    assert starttls is not None and starttls.find(q(NS_TLS, 'required')) is not None, tostr(f)
    r.send("<db:result from='evil.test' to='%s'>abcdef</db:result>" % A)
    assert r.stream_error() == 'policy-violation'
    r.close()
    r = RawServer(a.s2s_port, B, A)
    r.open()
    r.send("<message from='bob@%s' to='alice@%s'><body>plain</body></message>" % (B, A))
    assert r.stream_error() == 'policy-violation'
    r.close()
    test_messages_both_ways(fed, run)


def test_stanza_from_unauthenticated_domain(fed, run):
    """A peer that authenticated b.test by dialback (with b.test's secret,
    b.test's server vouching for the key) sends from evil.test:
    <invalid-from/>.  Stanzas before any authentication: <not-authorized/>;
    to a domain not served here: <host-unknown/>."""
    a, b = fed
    r = s2s_open_tls(a, B)
    r.send("<message from='bob@%s' to='alice@%s'><body>early</body></message>" % (B, A))
    assert r.stream_error() == 'not-authorized'
    r.close()

    def authed():
        r = s2s_open_tls(a, B)
        key = r.dialback_key(SECRET_B, A, r.header['id'])
        r.send("<db:result from='%s' to='%s'>%s</db:result>" % (B, A, key))
        el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), timeout=15, what='db:result')
        assert el.get('type') == 'valid', tostr(el)
        return r
    r = authed()
    r.send("<message from='mallory@evil.test' to='alice@%s'><body>spoof</body></message>" % A)
    assert r.stream_error() == 'invalid-from'
    r.close()
    r = authed()
    r.send("<message from='bob@%s' to='someone@elsewhere.test'><body>relay</body></message>" % B)
    assert r.stream_error() == 'host-unknown'
    r.close()
    test_messages_both_ways(fed, run)


def test_stream_carries_only_its_validated_domain_pairs(fed, run):
    """A stream on which b.test authenticated for a.test may not carry
    stanzas to a2.test, another domain of the same server (<host-unknown/>),
    until b.test also validates for a2.test on it (XEP-0220
    multiplexing)."""
    a, b = fed

    def db_result(r, to):
        key = r.dialback_key(SECRET_B, to, r.header['id'])
        r.send("<db:result from='%s' to='%s'>%s</db:result>" % (B, to, key))
        el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result') and e.get('from') == to,
                        timeout=20, what='db:result')
        assert el.get('type') == 'valid', tostr(el)

    def still_open(r):
        # the stream still answers: a <db:verify/> comes back
        r.send("<db:verify from='%s' to='%s' id='x1'>%064x</db:verify>" % (B, A, 1))
        el = r.wait_for(lambda e: e.tag in (q(NS_DIALBACK, 'verify'), q(NS_STREAM, 'error')),
                        what='db:verify answer')
        assert el.tag == q(NS_DIALBACK, 'verify'), tostr(el)

    r = s2s_open_tls(a, B)
    db_result(r, A)
    r.send("<message from='bob@%s' to='alice@%s'><body>fine</body></message>" % (B, A))
    still_open(r)
    r.send("<message from='bob@%s' to='alice@%s'><body>sideways</body></message>" % (B, A2))
    assert r.stream_error() == 'host-unknown'
    r.close()
    assert "'to' is not a domain this stream was authenticated for" in a.log()

    r = s2s_open_tls(a, B)
    db_result(r, A)
    db_result(r, A2)
    r.send("<message from='bob@%s' to='nobody@%s'><body>multiplexed</body></message>" % (B, A2))
    still_open(r)
    r.close()
    test_messages_both_ways(fed, run)


def test_dialback_key_flood_is_bounded(fed, run):
    a, b = fed
    r = s2s_open_tls(a, B)
    flood = ''.join("<db:result from='%s' to='%s'>%064x</db:result>" % (B, A, i)
                    for i in range(200))
    r.send(flood)
    assert r.stream_error(timeout=15) == 'policy-violation'
    r.close()
    assert 'too many dialback requests in flight' in a.log()
    # the answers to the verifications that went out find the stream gone;
    # federation with b.test goes on
    test_messages_both_ways(fed, run)


def test_db_verify_authoritative_role(fed, run):
    """b.test's server answers <db:verify/> for its own keys: valid for
    the right key, invalid for another."""
    a, b = fed
    r = s2s_open_tls(b, A)
    r.send("<db:verify from='%s' to='%s' id='abc'>%064x</db:verify>" % (A, B, 7))
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'verify'), what='db:verify')
    assert el.get('type') == 'invalid' and el.get('from') == B and el.get('to') == A, tostr(el)
    # b.test's key for a stream a.test (receiving) opened to it with id abc
    k = hashlib.sha256(SECRET_B).digest()
    key = hmac.new(k, ('%s %s %s' % (A, B, 'abc')).encode(), hashlib.sha256).hexdigest()
    r.send("<db:verify from='%s' to='%s' id='abc'>%s</db:verify>" % (A, B, key))
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'verify'), what='db:verify')
    assert el.get('type') == 'valid', tostr(el)
    r.close()


def test_s2s_close_and_reconnect(fed, run):
    a, b = fed
    test_messages_both_ways(fed, run)
    r = a.ctl('s2s-close', B)
    assert r.returncode == 0 and 'closed' in r.stdout, (r.stdout, r.stderr)
    # b.test sees its stream to a.test end (a stanza written meanwhile
    # would be lost with it: dialback streams have no acknowledgements)
    deadline = time.monotonic() + 10
    while 'out\t%s' % A in b.ctl('s2s-list').stdout:
        assert time.monotonic() < deadline, b.ctl('s2s-list').stdout
        time.sleep(0.05)
    test_messages_both_ways(fed, run)
    st = a.ctl('status')
    assert 's2s: enabled' in st.stdout, st.stdout
    r = a.ctl('s2s-close', 'nowhere.test')
    assert r.returncode != 0


def test_s2s_close_of_an_opening_route_does_not_back_off(fed, run):
    """parleyctl s2s-close on a route still opening bounces what it
    queued; the administrator's close is no failure of the peer, so the
    next stanza opens a new connection instead of bouncing at once."""
    a, b = fed
    ping = "<ping xmlns='urn:xmpp:ping'/>"

    async def listed():
        deadline = time.monotonic() + 10
        while 'out\t%s' % SILENT3 not in a.ctl('s2s-list').stdout:
            assert time.monotonic() < deadline, a.log()[-2000:]
            await asyncio.sleep(0.05)

    async def go():
        alice = await login(a, 'alice', host=A, resource='c')
        first = asyncio.ensure_future(iq(alice, 'get', 'x@' + SILENT3, ping, timeout=20))
        await listed()
        r = a.ctl('s2s-close', SILENT3)
        assert r.returncode == 0, (r.stdout, r.stderr)
        el = await first
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        second = asyncio.ensure_future(iq(alice, 'get', 'y@' + SILENT3, ping, timeout=20))
        await listed()
        assert not second.done(), tostr(second.result())
        a.ctl('s2s-close', SILENT3)
        el = await second
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        await logout(alice)
    run(go(), timeout=60)


def test_peer_killed_queued_stanzas_bounce(tmp_path, run):
    """b.test's server dies (SIGKILL): a.test sees the connection end; the
    next stanza queues while a new connection is tried and bounces with
    remote-server-not-found; a.test's own users are not affected."""
    pa, pb = free_port(), free_port()
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret', ('anna', A): 'anna-secret'},
                   peers={B: pb}, s2s_port=pa)
    b = FedParleyd(tmp_path / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb)
    a.start_with_users()
    try:
        b.start_with_users()

        async def go():
            alice = await login(a, 'alice', host=A, resource='k')
            anna = await login(a, 'anna', host=A, resource='k')
            bob = await login(b, 'bob', host=B, resource='k')
            body = unique('before ')
            alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
            await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
            bob.abort()
            os.kill(b.proc.pid, signal.SIGKILL)
            b.proc.wait(10)
            deadline = time.monotonic() + 10
            while 'out\t%s' % B in a.ctl('s2s-list').stdout:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            errors = asyncio.Queue()
            alice.add_event_handler('message_error', errors.put_nowait)
            lost = unique('after ')
            alice.send_message(mto='bob@' + B, mbody=lost, mtype='chat')
            m = await asyncio.wait_for(errors.get(), 15)
            assert m['body'] == lost and error_of(m) == 'remote-server-not-found', m
            el = await iq(alice, 'get', 'bob@' + B, "<ping xmlns='urn:xmpp:ping'/>")
            assert stanza_error(el) == 'remote-server-not-found', tostr(el)
            hello = unique('local ')
            anna.send_message(mto='alice@' + A, mbody=hello, mtype='chat')
            await next_message(alice, pred=lambda m: m['body'] == hello)
            await logout(alice, anna)
        run(go(), timeout=60)
    finally:
        if b.running():
            b.stop()
        else:
            b._logf.close()
        a.finish()


def test_backoff_does_not_refuse_the_peers_own_stream(tmp_path, run):
    """b.test was down when alice pinged bob, so a.test backs off from it
    (s2s.backoff); then b.test starts and connects to a.test itself.  The
    back-off is about a.test's own attempts: b.test's dialback is
    verified as usual (over a connection to b.test, which the back-off
    does not hold up), bob's message reaches alice, and b.test, evidently
    up, is no longer backed off: alice's answer goes through."""
    pa, pb = free_port(), free_port()
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret'}, peers={B: pb},
                   s2s_port=pa, s2s={'backoff': '60s', 'max_backoff': '10m'})
    b = FedParleyd(tmp_path / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb)
    a.start_with_users()
    try:
        async def down():
            alice = await login(a, 'alice', host=A, resource='o')
            el = await iq(alice, 'get', 'bob@' + B, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
            assert stanza_error(el) == 'remote-server-not-found', tostr(el)
            await logout(alice)
        run(down(), timeout=30)
        b.start_with_users()

        async def up():
            alice = await login(a, 'alice', host=A, resource='u')
            bob = await login(b, 'bob', host=B, resource='u')
            errors = asyncio.Queue()
            bob.add_event_handler('message_error', errors.put_nowait)
            body = unique('after the restart ')
            bob.send_message(mto='alice@' + A, mbody=body, mtype='chat')
            got = asyncio.ensure_future(next_message(alice, pred=lambda m: m['body'] == body,
                                                     timeout=15))
            bounced = asyncio.ensure_future(errors.get())
            done, _ = await asyncio.wait([got, bounced], timeout=16,
                                         return_when=asyncio.FIRST_COMPLETED)
            bounced.cancel()
            assert got in done and got.exception() is None, \
                error_of(bounced.result()) if bounced in done else 'nothing arrived'
            back = unique('answer ')
            alice.send_message(mto='bob@' + B, mbody=back, mtype='chat')
            await next_message(bob, pred=lambda m: m['body'] == back, timeout=15)
            await logout(alice, bob)
        run(up(), timeout=60)
    finally:
        if b.running():
            b.stop()
        a.finish()


def test_dns_resolution_through_c_ares(tmp_path, run):
    """A domain not in the static map is resolved through DNS (c-ares on
    the loop): 'localhost' has no SRV record and resolves from /etc/hosts
    to 127.0.0.1, where nothing listens on 5269 (the tests that listen
    there wait for their turn): the iq bounces with remote-server-not-found
    once every address was tried.  (Without a
    reachable DNS server the SRV queries time out first; the answer is
    the same, later.)"""
    with default_s2s_port():
        a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret'}, s2s={'connect_timeout': '40s'})
        a.start_with_users()
        try:
            async def go():
                alice = await login(a, 'alice', host=A, resource='d')
                el = await iq(alice, 'get', 'x@localhost', "<ping xmlns='urn:xmpp:ping'/>", timeout=45)
                assert stanza_error(el) == 'remote-server-not-found', tostr(el)
                await logout(alice)
            run(go(), timeout=60)
            assert 'localhost: connecting to 127.0.0.1 port 5269' in a.log(), a.log()[-3000:]
        finally:
            a.finish()


def test_queue_is_bounded(fed, run):
    """While a connection opens, at most s2s.max_queue (5) stanzas wait;
    more bounce at once with resource-constraint, the queued ones later
    with remote-server-timeout."""
    a, b = fed

    async def go():
        alice = await login(a, 'alice', host=A, resource='q')
        errors = asyncio.Queue()
        alice.add_event_handler('message_error', errors.put_nowait)
        for i in range(8):
            alice.send_message(mto='x@' + SILENT2, mbody='queued %d' % i, mtype='chat')
        got = {}
        for _ in range(8):
            m = await asyncio.wait_for(errors.get(), 20)
            got[m['body']] = error_of(m)
        assert [got['queued %d' % i] for i in range(8)] == \
            ['remote-server-timeout'] * 5 + ['resource-constraint'] * 3, got
        await logout(alice)
    run(go(), timeout=60)


def test_stanza_size_limit_on_s2s(fed, run):
    """limits.max_stanza_size (64K in the tests) holds on s2s streams."""
    a, b = fed
    r = s2s_open_tls(a, B)
    r.send_slowly("<message from='bob@%s' to='alice@%s'><body>%s</body></message>"
                  % (B, A, 'x' * (80 * 1024)))
    assert r.stream_error(timeout=10) == 'policy-violation'
    r.close()
    test_messages_both_ways(fed, run)
