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
