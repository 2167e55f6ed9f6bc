"""Running out of file descriptors under a connection flood: parleyd runs
with a low RLIMIT_NOFILE, a flood of TCP connections takes every
descriptor it has.  It says so in its log (at most once a second per
listener), pauses accepting instead of spinning on accept() (its CPU time
stays low), the sessions it already has keep working, and it accepts again
once the flood is gone.  (server/listener.c pauses the accept watcher for
1 s on EMFILE/ENFILE.)  The map of fault tests is in
test_fault_db.py."""
import os
import resource
import socket
import time

import pytest

import parleytest
from parleytest import HOST, RawClient, find_lines, unique

NOFILE = 64


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture
def small_server(tmp_path_factory):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-fd'), loglevel='info')
    srv.preexec_fn = low_nofile
    srv.start_with_users()
    yield srv
    srv.finish()


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def open_fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def test_connection_flood_with_few_descriptors(small_server):
    srv = small_server
    pid = srv.proc.pid
    a = RawClient(srv.port, timeout=20)
    a.login('alice', srv.password('alice'), resource='fd')
    b = RawClient(srv.port, timeout=20)
    b.login('bob', srv.password('bob'), resource='fd')

    flood = []
    try:
        # Far more connections than parleyd has descriptors: the kernel
        # completes them into the listen backlog, parleyd accepts until
        # accept() fails with EMFILE.
        for _ in range(NOFILE * 3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect(('127.0.0.1', srv.port))
            except OSError:
                s.close()
                continue
            flood.append(s)
        deadline = time.monotonic() + 10
        while not find_lines(r'Too many open files', srv.log()):
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.1)
        assert open_fds(pid) >= NOFILE - 2, open_fds(pid)

        # No busy loop on a listen socket that stays readable: a few
        # seconds of flood cost a small fraction of a CPU second.
        t0, c0 = time.monotonic(), cpu_seconds(pid)
        time.sleep(3)
        t1, c1 = time.monotonic(), cpu_seconds(pid)
        assert c1 - c0 < 0.3 * (t1 - t0), 'parleyd used %.2f s of CPU in %.1f s' % (c1 - c0, t1 - t0)

        # The sessions it has still work.
        body = unique('during-flood-')
        a.send("<message to='bob@%s/fd' type='chat'><body>%s</body></message>" % (HOST, body))
        b.wait_message(body)
        el = b.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        assert el.get('type') == 'result'

        # At most one line a second per listener, not one per attempt.
        lines = find_lines(r'accept on port %d: Too many open files' % srv.port, srv.log())
        assert lines and 'not accepting for 1 s' in lines[0], lines
        assert len(lines) <= (time.monotonic() - t0) + 12, len(lines)
    finally:
        for s in flood:
            s.close()

    # The flood is gone: parleyd notices the closed connections, gets its
    # descriptors back and accepts again (a fresh login and a message).
    deadline = time.monotonic() + 20
    while True:
        try:
            c = RawClient(srv.port, timeout=5)
            c.login('carol', srv.password('carol'), resource='after')
            break
        except (OSError, AssertionError, parleytest.StreamClosed):
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.5)
    body = unique('after-flood-')
    c.send("<message to='alice@%s/fd' type='chat'><body>%s</body></message>" % (HOST, body))
    a.wait_message(body)
    for x in (a, b, c):
        x.close()
    assert srv.running()
