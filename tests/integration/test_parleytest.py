"""The test harness itself: Parleyd.start when a port it picked was taken.

Every test picks its ports with free_port() before parleyd binds them, so
on a loaded machine another process can take one in between.  These tests
take the port on purpose and check that the first start moves the
listener to a fresh port (and only a port the server picked itself), and
that it gives up after PORT_RETRIES.
"""
import os
import socket
import subprocess
import sys

import pytest

import parleytest
from parleytest import HOST, FedParleyd, Parleyd, RawClient, ServerError

TAKEN = 'Address already in use'


def occupy(port):
    """A listening socket on 127.0.0.1:port, as another program's would be."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', port))
    s.listen(1)
    return s


def test_taken_port_moves_to_a_fresh_one(tmp_path):
    srv = Parleyd(tmp_path / 'moved', users={('alice', HOST): 'alice-secret'})
    port, old_tls = srv.port, srv.tls_port
    blocker = occupy(old_tls)
    try:
        srv.start_with_users()
        try:
            log = srv.log()
            assert 'listen 127.0.0.1 port %d: %s' % (old_tls, TAKEN) in log, log[-2000:]
            assert 'port %d was taken; starting again with %d' % (old_tls, srv.tls_port) in log
            assert srv.tls_port != old_tls and srv.port == port
            config = srv.config.read_text()
            assert '  - port: %d\n' % srv.tls_port in config and str(old_tls) not in config
            # the moved direct-TLS listener serves, and so does the other one
            for c in (RawClient(srv.tls_port, direct_tls=True), RawClient(srv.port)):
                try:
                    assert c.login('alice', 'alice-secret')
                finally:
                    c.close()
            # the port that was taken is still the other program's
            with pytest.raises(OSError):
                socket.create_server(('127.0.0.1', old_tls)).close()
        finally:
            srv.finish()
    finally:
        blocker.close()


def test_given_port_is_not_moved(tmp_path):
    """A port given from outside (peers and DNS records name it) stays."""
    given = parleytest.free_port()
    srv = FedParleyd(tmp_path / 'given', 'a.test', {('alice', 'a.test'): 'alice-secret'},
                     s2s_port=given)
    blocker = occupy(given)
    try:
        with pytest.raises(ServerError):
            srv.start()
        log = srv.log()
        assert log.count(TAKEN) == 1 and 'starting again' not in log, log[-2000:]
        assert srv.s2s_port == given and 'port: %d\n' % given in srv.config.read_text()
    finally:
        blocker.close()
        srv.stop()


def test_gives_up_after_the_retries(tmp_path, monkeypatch):
    """Every fresh port is taken as well: PORT_RETRIES moves, then the error."""
    srv = Parleyd(tmp_path / 'unlucky')
    blockers = [occupy(srv.tls_port)]
    try:
        for _ in range(Parleyd.PORT_RETRIES):
            while True:
                p = parleytest.free_port()
                if p not in (srv.port, srv.tls_port) and p not in [b.getsockname()[1] for b in blockers]:
                    break
            blockers.append(occupy(p))
        fresh = iter([b.getsockname()[1] for b in blockers[1:]])
        monkeypatch.setattr(parleytest, 'free_port', lambda: next(fresh))
        with pytest.raises(ServerError):
            srv.start()
        log = srv.log()
        assert log.count(TAKEN) == Parleyd.PORT_RETRIES + 1, log[-3000:]
        assert log.count('starting again') == Parleyd.PORT_RETRIES
        assert srv.tls_port == blockers[-1].getsockname()[1]
    finally:
        for b in blockers:
            b.close()
        srv.stop()


def test_free_ports_come_from_this_process_slot():
    """Below the ephemeral range (no outgoing connection takes one) and in
    a slot no other test process uses at the same time."""
    slot = parleytest.port_slot()
    if slot is None:
        pytest.skip('no port slot here (ephemeral range %d up, or all slots taken)'
                    % parleytest._ephemeral_low())
    first, size = slot
    mine = [parleytest.free_port() for _ in range(5)]
    assert len(set(mine)) == 5 and all(first <= p < first + size for p in mine), (slot, mine)
    assert first + size <= parleytest._ephemeral_low()
    # a port still bound is skipped: hold the next one free_port would give
    nxt = parleytest.free_port()
    blocker = occupy(nxt + 1 if nxt + 1 < first + size else first)
    try:
        assert blocker.getsockname()[1] not in [parleytest.free_port() for _ in range(size)]
    finally:
        blocker.close()
    # another process, while this one holds its slot, gets another slot
    code = ('import parleytest; s = parleytest.port_slot(); '
            'print(s[0] if s else "none", parleytest.free_port())')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(parleytest.__file__)).stdout.split()
    if out[0] == 'none':
        pytest.skip('no port slot left for a second process')
    other_first, other_port = int(out[0]), int(out[1])
    assert other_first != first and not first <= other_port < first + size, (slot, out)


class FakeServer:
    """A server for started(): records its stops; its start may fail."""

    def __init__(self, name, log, fail=None):
        self.name, self.log, self.fail = name, log, fail

    def start(self):
        self.log.append('start ' + self.name)
        if self.fail is not None:
            raise self.fail

    def stop(self):
        self.log.append('stop ' + self.name)
        if self.name == 'a':
            raise RuntimeError('a would not stop')


def test_started_stops_a_half_started_server():
    """A server whose start failed half-way (a peer that keeps running
    when it cannot bind) is stopped with the ones before it, the last
    first, and every stop runs even when one fails; the start's error is
    the one raised."""
    log = []
    servers = [FakeServer('a', log), FakeServer('b', log), FakeServer('c', log, fail=ServerError(TAKEN))]
    with pytest.raises(ServerError, match=TAKEN):
        with parleytest.started(*servers):
            pass
    assert log == ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']
