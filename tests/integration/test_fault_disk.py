"""The embedded store (SQLite) on a full file system: the database lives on
a small tmpfs mounted for the test (as root; skipped otherwise), which is
then filled.  A message to an offline user that cannot be stored comes
back to its sender with an error (never acknowledged and lost, never
silently dropped), online traffic goes on, the log says why, and once
space is freed messages are stored again, without restarting parleyd.
Every message is either bounced or delivered afterwards.  The map of
fault tests is in test_fault_db.py."""
import os
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, q, stanza_error, tostr, unique


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / 'data'
    mnt.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', str(mnt)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip('cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): %s'
                    % r.stderr.strip())
    yield mnt
    subprocess.run(['umount', '-l', str(mnt)], capture_output=True, timeout=30)


@pytest.fixture
def disk_server(tmp_path_factory, small_disk):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-disk'), loglevel='info')
    srv.sqlite_path = str(small_disk / 'parley.db')
    srv.write_config()
    srv.start_with_users()
    yield srv
    srv.finish()


def fill(directory):
    """Fill the file system of directory; returns the filler's path."""
    path = directory / 'filler'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512):
            try:
                while True:
                    os.write(fd, b'\0' * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return path


def send_chat(c, to, body):
    c.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, unique('m'), body))


def test_full_file_system(disk_server, small_disk):
    srv = disk_server
    a = RawClient(srv.port, timeout=20)
    a.login('alice', srv.password('alice'), resource='disk')
    c = RawClient(srv.port, timeout=20)
    c.login('carol', srv.password('carol'), resource='disk')

    stored_before = unique('before-')
    send_chat(a, 'bob@%s' % HOST, stored_before)
    el = a.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert el.get('type') == 'result'

    filler = fill(small_disk)
    sent, bounced = [stored_before], []
    try:
        # Offline messages until one cannot be stored (SQLite may still
        # find room in pages it has: the first few can succeed).
        for i in range(400):
            body = 'full-%03d-%s' % (i, unique(''))
            sent.append(body)
            send_chat(a, 'bob@%s' % HOST, body)
            el = a.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
            assert el.get('type') == 'result', tostr(el)
            errs = [e for e in a.received if e.tag == q(NS_CLIENT, 'message')
                    and e.get('type') == 'error']
            if errs:
                break
        errs = [e for e in a.received if e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error']
        assert errs, 'no message bounced on a full file system:\n' + srv.log()[-3000:]
        for e in errs:
            assert stanza_error(e) in ('resource-constraint', 'internal-server-error'), tostr(e)
            err = e.find(q(NS_CLIENT, 'error'))
            assert err.get('type') == 'wait', tostr(e)
            bounced.append(e.findtext(q(NS_CLIENT, 'body')))

        # Online traffic goes on.
        live = unique('live-')
        send_chat(a, 'carol@%s/disk' % HOST, live)
        got = c.wait_message(live)
        assert got.get('type') == 'chat'
        assert srv.running()
        log = srv.log()
        assert 'offline_store bob@%s: temporary failure: database or disk is full' % HOST in log, \
            log[-3000:]
        assert 'offline: cannot store a message for bob@%s' % HOST in log, log[-3000:]
    finally:
        filler.unlink()

    # Space again: messages are stored again (within the store's back-off).
    deadline = time.monotonic() + 40
    while True:
        body = unique('after-')
        sent.append(body)
        send_chat(a, 'bob@%s' % HOST, body)
        a.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        bounce = [e for e in a.received if e.tag == q(NS_CLIENT, 'message')
                  and e.get('type') == 'error' and e.findtext(q(NS_CLIENT, 'body')) == body]
        if not bounce:
            break
        bounced.append(body)
        assert time.monotonic() < deadline, 'no recovery:\n' + srv.log()[-3000:]
        time.sleep(1)

    # Every message was bounced or is delivered now; nothing twice.
    expected = [b for b in sent if b not in bounced]
    b = RawClient(srv.port, timeout=20)
    b.login('bob', srv.password('bob'), resource='back', presence=False)
    b.send('<presence/>')
    got = []
    while len(got) < len(expected):
        el = b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message'), timeout=20,
                        what='offline message %d of %d' % (len(got) + 1, len(expected)))
        got.append(el.findtext(q(NS_CLIENT, 'body')))
    assert got == expected
    el = b.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert not [e for e in b.received if e.tag == q(NS_CLIENT, 'message')][len(expected):]
    for x in (a, b, c):
        x.close()
    assert os.path.exists(srv.dir / srv.sqlite_path)
