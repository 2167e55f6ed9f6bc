"""XEP-0227 import of a large file (parleyctl import-xep0227, parleyd
stopped): the file is read one <user/> at a time, so a 1 GB file comes in
whole with the peak memory of parleyctl far below the size of the file; a
user that alone takes more than the import holds in memory is refused by
name and the others come in."""
import base64
import os
import shutil
import subprocess
import sys
import time

import pytest

import parleytest
from parleytest import HOST

# What parleyctl may use at most while importing the 1 GB file (its own
# peak resident set, as the kernel counts it).
RSS_BOUND_KB = 64 * 1024
# ctl/ctl-xep0227.c: USER_MAX_MB
USER_MAX_MB = 64

# Run a command and write its peak RSS (kB, of it alone) into a file.
RSS_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL).returncode
with open(sys.argv[1], 'w') as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


@pytest.fixture
def empty_srv(tmp_path_factory):
    """A server with no account, not started; its files (a database of
    about the size of the file) go away after the test."""
    s = parleytest.Parleyd(tmp_path_factory.mktemp('parley-pie-big'), users={})
    yield s
    if s.running():
        s.finish()
    for p in s.dir.glob('parley.db*'):
        p.unlink()


def photo_lines(kb, seed):
    """kb kB of base64 text in lines of 76, different per seed."""
    raw = os.urandom(kb * 768 - 16) + seed.to_bytes(16, 'big')
    b64 = base64.b64encode(raw).decode()
    return '\n'.join(b64[i:i + 76] for i in range(0, len(b64), 76))


def user_xml(name, photo, offline, body):
    parts = ["<user name='%s' password='pw-%s'><vCard xmlns='vcard-temp'><FN>%s</FN>"
             "<PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard>"
             % (name, name, name, photo)]
    if offline:
        parts.append('<offline-messages>')
        for k in range(offline):
            parts.append("<message xmlns='jabber:client' from='sender@%s/r' to='%s@%s' "
                         "type='chat' id='m%d'><body>%d %s</body></message>"
                         % (HOST, name, HOST, k, k, body))
        parts.append('</offline-messages>')
    parts.append('</user>\n')
    return ''.join(parts)


def import_measured(s, path):
    """parleyctl import-xep0227 path: (CompletedProcess, peak RSS in kB)."""
    rss_file = s.dir / 'rss'
    cmd = [sys.executable, '-c', RSS_WRAPPER, str(rss_file), s.parleyctl, '-c', str(s.config),
           'import-xep0227', str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(s.dir), env=s.env)
    return r, int(rss_file.read_text())


def test_import_1gb_file_with_bounded_memory(empty_srv, tmp_path):
    """1 GB in a normal build.  Under the sanitizers the memory figure is
    the sanitizer's (its quarantine alone holds up to 256 MB of freed
    memory) and every write is slower, so that build imports a tenth of the
    file and checks only that everything arrived."""
    s = empty_srv
    sanitized = parleytest.built_with_sanitizers()
    users, offline = (100 if sanitized else 1000), 4
    path = tmp_path / 'big.xml'
    body = 'y' * (128 * 1024)
    photos = {}
    t0 = time.monotonic()
    try:
        with open(path, 'w') as f:
            f.write("<?xml version='1.0' encoding='utf-8'?>\n"
                    "<server-data xmlns='urn:xmpp:pie:0'><host jid='%s'>\n" % HOST)
            shared = photo_lines(512, 0)
            for i in range(users):
                name = 'user%05d' % i
                # a few photos of their own (checked after), the rest shared
                photo = photo_lines(512, i + 1) if i % 250 == 7 else shared
                if i % 250 == 7:
                    photos[name] = photo
                f.write(user_xml(name, photo, offline, body))
            f.write('</host></server-data>\n')
        size = path.stat().st_size
        assert size > users * 1000 * 1000, size
        t1 = time.monotonic()
        r, rss = import_measured(s, path)
        t2 = time.monotonic()
        print('file %d bytes written in %.1f s; imported in %.1f s; parleyctl peak RSS %d kB'
              % (size, t1 - t0, t2 - t1, rss))
        assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
        assert 'imported %d users, skipped 0\n' % users in r.stdout, r.stdout[-2000:]
        if not sanitized:
            assert rss < RSS_BOUND_KB, (rss, RSS_BOUND_KB)
    finally:
        path.unlink()
    # every user arrived, with the whole vCard and every offline message
    assert s.db_query('SELECT COUNT(*) FROM users WHERE server_host = ?', (HOST,))[0][0] == users
    assert s.db_query('SELECT COUNT(*) FROM offline_messages WHERE server_host = ?',
                      (HOST,))[0][0] == users * offline
    for name, photo in photos.items():
        (vcard,), = s.db_query('SELECT vcard FROM vcards WHERE server_host = ? AND username = ?',
                               (HOST, name))
        assert photo in vcard, name
    s.passwords = {('user00007', HOST): 'pw-user00007'}
    s.start()
    c = parleytest.RawClient(s.port, host=HOST)
    try:
        c.login('user00007', 'pw-user00007', resource='big', presence=False)
        c.send('<presence/>')
        got = c.wait_for(lambda e: e.tag == '{jabber:client}message', timeout=20,
                         what='an offline message')
        assert got.findtext('{jabber:client}body').startswith('0 yyy'), got
    finally:
        c.close()


def test_import_user_too_large(empty_srv, tmp_path):
    """One <user/> larger than the import holds in memory: named as a
    failure, the users before and after it come in."""
    s = empty_srv
    path = tmp_path / 'huge-user.xml'
    body = 'z' * (1024 * 1024)
    try:
        with open(path, 'w') as f:
            f.write("<server-data xmlns='urn:xmpp:pie:0'><host jid='%s'>" % HOST)
            f.write(user_xml('before', 'AAAA', 1, 'hello'))
            f.write(user_xml('huge', 'AAAA', USER_MAX_MB + 8, body))
            f.write(user_xml('after', 'AAAA', 1, 'hello'))
            f.write('</host></server-data>')
        r, rss = import_measured(s, path)
    finally:
        path.unlink()
    print('parleyctl peak RSS %d kB' % rss)
    # the user is dropped as soon as it is too large: memory stays near the
    # cap (not a figure the sanitizers' build can keep)
    if not parleytest.built_with_sanitizers():
        assert rss < (USER_MAX_MB + 64) * 1024, rss
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "the user 'huge' of host %s takes more than %d MB of the file" % (HOST, USER_MAX_MB) \
        in r.stderr, r.stderr
    assert 'imported 2 users, skipped 0, 1 failure' in r.stdout, r.stdout
    assert sorted(u for (u,) in s.db_query('SELECT username FROM users WHERE server_host = ?',
                                           (HOST,))) == ['after', 'before']


def test_user_too_large_at_its_end_tag(empty_srv, tmp_path):
    """A <user/> that passes the limit only at its own end tag: it is
    refused by name, and the user after it, the end of its host and the
    next host are read as usual (the users of the second host on that
    host)."""
    from parleytest import OTHER
    s = empty_srv
    path = tmp_path / 'edge-user.xml'
    head = "<user name='edge' password='pw'><x xmlns='urn:example:pad'>"
    limit = USER_MAX_MB * 1024 * 1024
    try:
        with open(path, 'w') as f:
            f.write("<server-data xmlns='urn:xmpp:pie:0'><host jid='%s'>" % HOST)
            f.write(user_xml('before', 'AAAA', 0, ''))
            # the <x/> ends below the limit, the white space after it
            # carries </user> past it
            f.write(head + 'a' * (limit - len(head) - 64) + '</x>' + ' ' * 128 + '</user>')
            f.write(user_xml('after', 'AAAA', 0, ''))
            f.write("</host><host jid='%s'>" % OTHER)
            f.write(user_xml('first', 'AAAA', 0, ''))
            f.write(user_xml('second', 'AAAA', 0, ''))
            f.write('</host></server-data>')
        r, rss = import_measured(s, path)
    finally:
        path.unlink()
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "the user 'edge' of host %s takes more than %d MB of the file" % (HOST, USER_MAX_MB) \
        in r.stderr, r.stderr
    assert 'imported 4 users, skipped 0, 1 failure' in r.stdout, r.stdout
    rows = s.db_query('SELECT server_host, username FROM users ORDER BY server_host, username')
    assert sorted(rows) == sorted([(HOST, 'after'), (HOST, 'before'), (OTHER, 'first'),
                                   (OTHER, 'second')]), rows
