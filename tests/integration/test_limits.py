"""Limits that protect the server from clients: failed authentication
attempts, connections per address (stream management sessions waiting to be
resumed included), sessions per account, the login deadline, and the output
cap for a client that stops reading.  Each case also shows that other users
keep working.  These tests run against a parleyd of their own with tight
limits."""
import json
import re
import socket
import time

import pytest

import parleytest
from parleytest import (HOST, NS_BIND, NS_CLIENT, NS_REGISTER, NS_SASL, RawClient, q, stanza_error,
                        stream_header, tostr)
from test_sasl2_sm import NS_BIND2, NS_SASL2, Sasl2Client, kill, resume_el, wait_log
from test_sm import SMClient, send_chat, sm_tag


class TightParleyd(parleytest.Parleyd):
    """parleyd with small limits (the rest of the configuration as usual)."""
    LIMITS = {
        'max_connections_per_ip: 0': 'max_connections_per_ip: 6\n  max_sessions_per_user: 4',
        'handshake_timeout: 30s': 'handshake_timeout: 5s',
        'throttle: 0,': 'throttle: 60s,',
    }

    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        for old, new in self.LIMITS.items():
            assert old in text, 'the harness configuration changed: %s' % old
            text = text.replace(old, new)
        text = text.replace('  max_stanza_size: 64K\n', '  max_stanza_size: 64K\n  max_output: 64K\n')
        # One more listener, on IPv6 loopback.
        self.port6 = parleytest.free_port()
        text = text.replace('listen:\n', 'listen:\n  - port: %d\n    address: "::1"\n' % self.port6, 1)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def tight(tmp_path_factory):
    srv = TightParleyd(tmp_path_factory.mktemp('tight'))
    srv.start()
    srv.create_users()
    yield srv
    srv.finish()


def _wait_connections(srv, n=0, timeout=10):
    """A closed connection frees its per-address place when the server has
    finished closing it, a moment after the client's close: wait until n
    are left, so that one test's connections do not count against the next
    one's (or against the next connection of a test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = srv.ctl('status').stdout
        if re.search(r'^connections: %d$' % n, out, re.M):
            return
        time.sleep(0.05)
    raise AssertionError('connections still open: %s' % out)


@pytest.fixture(autouse=True)
def settled(tight):
    _wait_connections(tight)
    yield


def _pair(srv):
    a = RawClient(srv.port)
    a.login('carol', srv.password('carol'), resource=parleytest.unique('w-'))
    b = RawClient(srv.port)
    b.login('erin', srv.password('erin'), resource=parleytest.unique('w-'))
    return a, b


def _still_talking(a, b):
    body = parleytest.unique('alive-')
    a.send("<message to='%s' type='chat'><body>%s</body></message>" % (b.jid, body))
    assert b.wait_message(body, timeout=10).get('from') == a.jid


def test_too_many_failed_auth_attempts_close_the_stream(tight):
    c = RawClient(tight.port)
    try:
        c.open()
        c.starttls()
        for attempt in range(2):
            assert c.auth_plain('alice', 'wrong-%d' % attempt).tag == q(NS_SASL, 'failure')
        # The third failure (auth_attempts: 3) is answered, then the stream closes.
        assert c.auth_plain('alice', 'wrong-again').tag == q(NS_SASL, 'failure')
        assert c.stream_error(timeout=10) == 'policy-violation'
    finally:
        c.close()
    assert 'too many failed authentication attempts' in tight.log()


def test_connections_per_address_are_limited(tight):
    a, b = _pair(tight)      # 2 of the 6 allowed
    extra = []
    try:
        for _ in range(4):
            c = RawClient(tight.port)
            c.open()
            extra.append(c)
        # The seventh connection from 127.0.0.1 is closed at once, unanswered.
        s = socket.create_connection(('127.0.0.1', tight.port), timeout=5)
        s.sendall(stream_header().encode())
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b''
        s.close()
        assert data == b'', 'the connection over the limit was answered: %r' % data[:200]
        assert 'limits.max_connections_per_ip' in tight.log()
        _still_talking(a, b)
        # Freeing one place lets a new connection in.
        extra.pop().close()
        time.sleep(0.3)
        c = RawClient(tight.port)
        c.open()
        assert c.features is not None
        extra.append(c)
    finally:
        for c in extra:
            c.close()
        a.close()
        b.close()


def test_login_that_takes_too_long_is_closed(tight):
    a, b = _pair(tight)
    c = RawClient(tight.port)
    try:
        c.open()          # header answered, then nothing: handshake_timeout is 5 s
        assert c.stream_error(timeout=20) == 'connection-timeout'
        _still_talking(a, b)   # bound sessions are not subject to the login deadline
    finally:
        c.close()
        a.close()
        b.close()


def test_client_that_stops_reading_is_disconnected(tight):
    a, b = _pair(tight)
    slow = RawClient(tight.port)
    # A tiny receive window, so the server's output queue (max_output 64K)
    # fills instead of the kernel's buffers.
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        slow.login('bob', tight.password('bob'), resource='never-reads')
        body = 'z' * 1000
        flood = ("<message to='%s' type='chat'><body>%s</body></message>" % (slow.jid, body)) * 50
        deadline = time.monotonic() + 30
        while 'peer not reading' not in tight.log() and time.monotonic() < deadline:
            a.send(flood)
            time.sleep(0.01)
        assert 'peer not reading' in tight.log(), 'the server kept buffering for a client that does not read'
        _still_talking(a, b)
    finally:
        slow.close()
        a.close()
        b.close()


def _register(c, user):
    return c.iq('set', "<query xmlns='%s'><username>%s</username><password>long-enough</password></query>"
                % (NS_REGISTER, user))


def test_registrations_per_address_are_throttled(tight):
    first, second = parleytest.unique('t1-'), parleytest.unique('t2-')
    with RawClient(tight.port) as c:
        c.open()
        c.starttls()
        r = _register(c, first)
        assert r.get('type') == 'result', tostr(r)
    with RawClient(tight.port) as c:
        c.open()
        c.starttls()
        r = _register(c, second)     # throttle: 60s, same address
        assert stanza_error(r) == 'resource-constraint', tostr(r)
        assert c.auth_plain(second, 'long-enough').tag == q(NS_SASL, 'failure')


def test_ipv6_listener(tight):
    c = RawClient(tight.port6, address='::1')
    try:
        jid = c.login('alice', tight.password('alice'), resource='over-ipv6')
        assert jid == 'alice@%s/over-ipv6' % HOST
        assert '::1' in tight.log()
    finally:
        c.close()


def _detach(srv, c):
    """Drop c's connection (`ss -K`) and wait until its session is kept for
    resumption."""
    kill(srv, c)
    wait_log(srv, 'connection of %s lost: session kept' % re.escape(c.jid),
             'the session of %s was not kept' % c.jid)


def _resources(srv, user):
    """{resource: detached} of user's sessions."""
    info = json.loads(srv.ctl('--json', 'connected-users-info').stdout)
    return {s['resource']: s['detached'] for s in info if s['user'] == user}


def _end_sessions(srv, *users):
    """End the users' sessions (detached ones too), so that they hold no
    place in the next test."""
    for user in users:
        if _resources(srv, user):
            srv.ctl('kick-session', '%s@%s' % (user, HOST))
    deadline = time.monotonic() + 10
    while any(_resources(srv, user) for user in users):
        assert time.monotonic() < deadline, 'sessions left: %s' % users
        time.sleep(0.05)


def _bind_error(c, resource):
    c.send("<iq type='set' id='b-over'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
           % (NS_BIND, resource))
    return c.wait_iq('b-over')


def test_detached_sessions_keep_their_places(tight):
    """A session kept for resumption keeps its connection's place under
    max_connections_per_ip (6 here): one address cannot pile up sessions by
    dropping connections.  At the limit, a client may still come back and
    resume; one that binds a new session instead ends the session from that
    address that has waited longest, whose unacknowledged message goes to
    offline storage, and comes with the next available presence."""
    clients = []
    try:
        sender = RawClient(tight.port)                        # place 1
        clients.append(sender)
        sender.login('carol', tight.password('carol'), resource=parleytest.unique('s-'))
        kept = []
        for i in range(5):                                    # places 2 to 6
            c = SMClient(tight)
            clients.append(c)
            user = ('alice', 'bob')[i % 2]
            previd = c.sm_login(user, resource='kept-%d' % i).get('id')
            send_chat(sender, c.jid, 'to-kept-%d' % i)
            c.wait_message('to-kept-%d' % i)                  # never acknowledged
            _detach(tight, c)
            kept.append((user, c.jid, previd))
        assert _resources(tight, 'alice') == {'kept-0': True, 'kept-2': True, 'kept-4': True}

        # A new session from the address at its limit: kept-0 makes room.
        new = RawClient(tight.port)
        clients.append(new)
        new.login('alice', tight.password('alice'), resource='new', presence=False)
        assert _resources(tight, 'alice') == {'kept-2': True, 'kept-4': True, 'new': False}
        assert _resources(tight, 'bob') == {'kept-1': True, 'kept-3': True}
        assert parleytest.find_lines('detached session %s ends to make room '
                                     r'\(limits.max_connections_per_ip\)' % re.escape(kept[0][1]),
                                     tight.log())
        new.send('<presence/>')
        assert new.wait_message('to-kept-0', timeout=10).get('to') == kept[0][1]

        # Still at the limit: kept-4 is resumed, and nothing else ends.
        back = SMClient(tight)
        clients.append(back)
        back.auth('alice')
        back.send(resume_el(kept[4][2], 0))
        el = back.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
        assert el.tag == sm_tag('resumed'), tostr(el)
        back.wait_message('to-kept-4')
        assert _resources(tight, 'alice') == {'kept-2': True, 'kept-4': False, 'new': False}
        assert _resources(tight, 'bob') == {'kept-1': True, 'kept-3': True}
    finally:
        for c in clients:
            c.close()
        _end_sessions(tight, 'alice', 'bob')


def test_sessions_per_account_are_limited(tight):
    """max_sessions_per_user (4 here) counts an account's sessions, open or
    waiting to be resumed.  At the limit, a new bind ends the one that has
    waited longest (its unacknowledged message goes to offline storage);
    when all are open, a bind is refused with <resource-constraint/>
    (RFC 6120 7.6.2.1), and a SASL2 login's Bind 2 request binds nothing."""
    clients = []
    try:
        sender = RawClient(tight.port)
        clients.append(sender)
        sender.login('carol', tight.password('carol'), resource=parleytest.unique('s-'))
        kept = SMClient(tight)
        clients.append(kept)
        kept.sm_login('erin', resource='kept')
        send_chat(sender, kept.jid, 'to-kept')
        kept.wait_message('to-kept')                          # never acknowledged
        _detach(tight, kept)
        for i in range(3):
            c = RawClient(tight.port)
            clients.append(c)
            c.login('erin', tight.password('erin'), resource='open-%d' % i, presence=False)

        # The fifth session: the detached one ends to make room.
        new = RawClient(tight.port)
        clients.append(new)
        new.login('erin', tight.password('erin'), resource='new', presence=False)
        assert _resources(tight, 'erin') == {'open-0': False, 'open-1': False, 'open-2': False,
                                             'new': False}
        assert parleytest.find_lines(r'detached session %s ends to make room '
                                     r'\(limits.max_sessions_per_user\)' % re.escape(kept.jid),
                                     tight.log())
        new.send('<presence/>')
        assert new.wait_message('to-kept', timeout=10).get('to') == kept.jid

        # Four open sessions: no room for another.
        with RawClient(tight.port) as over:
            over.open()
            over.starttls()
            assert over.auth_plain('erin', tight.password('erin')).tag == q(NS_SASL, 'success')
            over.open()
            err = _bind_error(over, 'one-too-many')
            assert stanza_error(err) == 'resource-constraint', tostr(err)
            assert err.find(q(NS_CLIENT, 'error')).get('type') == 'wait', tostr(err)
        _wait_connections(tight, 5)
        with Sasl2Client(tight) as inline:
            el = inline.start().authenticate(
                'erin', "<bind xmlns='%s'><tag>over</tag></bind>" % NS_BIND2)
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            assert el.find(q(NS_BIND2, 'bound')) is None, tostr(el)
            assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == 'erin@%s' % HOST
            assert stanza_error(_bind_error(inline, 'still-too-many')) == 'resource-constraint'
        assert sorted(_resources(tight, 'erin')) == ['new', 'open-0', 'open-1', 'open-2']
    finally:
        for c in clients:
            c.close()
        _end_sessions(tight, 'erin')
