"""Limits that protect the server from clients: failed authentication
attempts, connections per address, the login deadline, and the output cap for
a client that stops reading.  Each case also shows that other users keep
working.  These tests run against a parleyd of their own with tight limits."""
import re
import socket
import time

import pytest

import parleytest
from parleytest import HOST, NS_REGISTER, NS_SASL, RawClient, q, stanza_error, stream_header, tostr


class TightParleyd(parleytest.Parleyd):
    """parleyd with small limits (the rest of the configuration as usual)."""
    LIMITS = {
        'max_connections_per_ip: 0': 'max_connections_per_ip: 6',
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


def _wait_no_connections(srv, timeout=10):
    """A closed connection frees its per-address place when the server has
    finished closing it, a moment after the client's close: wait for that,
    so one test's connections do not count against the next one's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = srv.ctl('status').stdout
        if re.search(r'^connections: 0$', out, re.M):
            return
        time.sleep(0.05)
    raise AssertionError('connections still open: %s' % out)


@pytest.fixture(autouse=True)
def settled(tight):
    _wait_no_connections(tight)
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
