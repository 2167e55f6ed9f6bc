"""pytest fixtures for Parley's integration tests (see parleytest.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import parleytest  # noqa: E402


def start_server(tmp_path_factory, name, **kw):
    """A started parleyd with its accounts (for fixtures of other files)."""
    return _start(tmp_path_factory, name, **kw)


def _start(tmp_path_factory, name, **kw):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp(name), **kw)
    srv.start_with_users()
    return srv


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """A running parleyd shared by the tests of one file, with the accounts
    of parleytest.USERS.  At the end it is stopped with SIGTERM; a non-zero
    exit or a sanitizer report fails the last test of the file."""
    srv = _start(tmp_path_factory, 'parley')
    yield srv
    srv.finish()


@pytest.fixture
def fresh_server(tmp_path_factory):
    """A parleyd of its own, for tests that stop or restart it."""
    srv = _start(tmp_path_factory, 'parley-own')
    yield srv
    srv.finish()


@pytest.fixture(scope='module')
def fed_peer(tmp_path_factory):
    """(a, p): a.test (a FedParleyd) with alice, and b2.test, a raw peer
    that connects with a certificate of the test CA (SASL EXTERNAL,
    XEP-0288 bidi), so that what a.test sends to b2.test comes on p's
    stream too; p speaks for any user of b2.test."""
    from parleytest import FED_A, FED_B, NS_SASL, q, tostr
    from test_s2s_rawpeer import NS_BIDI, CertServer
    base = tmp_path_factory.mktemp('fed-peer')
    ca = parleytest.make_test_ca(base / 'ca', [FED_A, FED_B])
    a = parleytest.FedParleyd(base / 'a', FED_A, {('alice', FED_A): 'alice-secret'},
                              peers={FED_B: parleytest.free_port()}, ca=ca)
    a.start_with_users()
    p = CertServer(a.s2s_port, FED_B, FED_A, ca[FED_B], timeout=15)
    try:
        p.starttls()
        p.send("<bidi xmlns='%s'/>" % NS_BIDI)
        p.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
        el = p.wait_for(lambda e: e.tag.startswith('{%s}' % NS_SASL), what='SASL answer')
        assert el.tag == q(NS_SASL, 'success'), tostr(el)
        p.open()
        yield a, p
    finally:
        p.close()
        a.finish()


@pytest.fixture
def loop():
    """A new asyncio loop per test (slixmpp binds to the current loop when a
    client is made)."""
    with parleytest.event_loop() as lp:
        yield lp


@pytest.fixture
def run(loop):
    """run(coro, timeout=30): run a coroutine on the test's loop, bounded."""
    return parleytest.runner(loop)


@pytest.fixture
def witness(server):
    """Two connected users who must still talk to each other after the test's
    bad input (call witness.check() at the end of the test)."""
    w = parleytest.Witness(server)
    yield w
    w.close()


@pytest.fixture
def raw(server):
    """raw(): a RawClient on the STARTTLS port; closed after the test."""
    clients = []

    def make(direct_tls=False, **kw):
        c = parleytest.RawClient(server.tls_port if direct_tls else server.port,
                                 direct_tls=direct_tls, **kw)
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()
