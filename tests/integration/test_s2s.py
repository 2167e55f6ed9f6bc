"""Federation: two parleyd instances (a.test and b.test) on loopback,
names resolved through the s2s static host map; STARTTLS and dialback
with self-signed certificates."""
import asyncio
import os
import signal
import socket
import threading
import time

import pytest

from parleytest import (NS_DIALBACK, NS_STANZA_ERR, NS_STREAM, NS_TLS, FedParleyd, RawServer,
                        free_port, iq, login, logout, next_message, q, stanza_error, tostr, unique)

A, B = 'a.test', 'b.test'
DOWN = 'down.test'      # the map points at a closed port
SILENT = 'silent.test'  # the map points at a port that accepts and never answers
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
                   peers={B: pb, DOWN: closed_port, SILENT: silent.port}, s2s_port=pa,
                   s2s={'connect_timeout': '3s'})
    b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret', ('bea', B): 'bea-secret'},
                   peers={A: pa}, s2s_port=pb,
                   s2s={'dialback_secret_file': str(base / 'b-secret')})
    a.start_with_users()
    try:
        b.start_with_users()
    except Exception:
        a.stop()
        raise
    yield a, b
    silent.close()
    for s in (a, b):
        if s.running():
            s.finish()


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
