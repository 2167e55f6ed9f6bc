"""SCRAM-SHA-512 and SCRAM-SHA-512-PLUS over raw sockets (SASL and SASL2),
and the fallback of an account that has no SHA-512 keys yet (made before
schema version 11): <not-authorized/> after a challenge, as for an unknown
user, but no failed login counted, SCRAM-SHA-256 still works, and setting
the password adds the keys."""
import time

import pytest

from parleytest import HOST, find_lines, tostr, unique
from scramclient import scram, tls_exporter, tls_server_end_point
from test_scram_cb import client  # noqa: F401  (the fixture: a client after STARTTLS)


def _wait_log(server, pattern, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if find_lines(pattern, server.log()):
            return True
        time.sleep(0.05)
    return False


def _old_account(server):
    """A fresh account whose SHA-512 keys are removed, as an account made
    before the migration to schema 11 is stored."""
    user = unique('old')
    server.register(user, HOST, 'pencil-old')
    server.db_query('UPDATE users SET sha512_salt = NULL, sha512_iterations = NULL, '
                    'sha512_stored_key = NULL, sha512_server_key = NULL '
                    'WHERE server_host = ? AND username = ?', (HOST, user))
    return user


def test_advertised(client):
    for tls12 in (False, True):
        mechs = client(tls12=tls12).mechanisms()
        assert 'SCRAM-SHA-512' in mechs and 'SCRAM-SHA-512-PLUS' in mechs, mechs


@pytest.mark.parametrize('sasl2', [False, True])
def test_login(server, client, sasl2):
    c = client()
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-512', 'n,,', sasl2=sasl2)
    assert r.ok, tostr(r.el)
    assert _wait_log(server, r'alice@%s authenticated with SCRAM-SHA-512$' % HOST.replace('.', r'\.'))


def test_plus_tls_exporter(server, client):
    c = client()
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-512-PLUS', 'p=tls-exporter,,',
              tls_exporter(c.sock))
    assert r.ok, tostr(r.el)
    assert _wait_log(server, r'bob@%s authenticated with SCRAM-SHA-512-PLUS \(tls-exporter\)$'
                     % HOST.replace('.', r'\.'))


def test_plus_tls_server_end_point_on_tls12(server, client):
    c = client(tls12=True)
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-512-PLUS', 'p=tls-server-end-point,,',
              tls_server_end_point(server, c.sock), sasl2=True)
    assert r.ok, tostr(r.el)


def test_plus_wrong_binding(server, client):
    c = client()
    good = tls_exporter(c.sock)
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-512-PLUS', 'p=tls-exporter,,',
              bytes([good[0] ^ 1]) + good[1:])
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


def test_wrong_password(server, client):
    c = client()
    r = scram(c, 'carol', 'not-the-password', 'SCRAM-SHA-512', 'n,,')
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert _wait_log(server, r'auth failed: .*user=carol@.*reason=bad-password')


def test_unknown_user_gets_a_challenge(server, client):
    """An unknown user is answered like a known one (a challenge), and fails
    at the proof."""
    c = client()
    r = scram(c, unique('nobody'), 'whatever', 'SCRAM-SHA-512', 'n,,')
    assert r.server_first, 'no challenge for an unknown user'
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


@pytest.mark.parametrize('sasl2', [False, True])
def test_account_without_sha512_falls_back(server, client, sasl2):
    user = _old_account(server)
    c = client()
    r = scram(c, user, 'pencil-old', 'SCRAM-SHA-512', 'n,,', sasl2=sasl2)
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert r.server_first, 'no challenge: the answer tells the account from an unknown user'
    assert _wait_log(server, r'auth declined: .*user=%s@.* mechanism=SCRAM-SHA-512 '
                     r'reason=no-credentials-for-mechanism$' % user)
    # not a failed login: no "auth failed" line for the user
    assert not find_lines(r'auth failed: .*user=%s@' % user, server.log())
    # the same stream falls back to SCRAM-SHA-256 (and -PLUS)
    r = scram(c, user, 'pencil-old', 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,', tls_exporter(c.sock),
              sasl2=sasl2)
    assert r.ok, tostr(r.el)


def test_password_change_adds_sha512(server, client):
    user = _old_account(server)
    r = server.ctl('passwd', user, HOST, 'pencil-new')
    assert r.returncode == 0, r.stderr
    rows = server.db_query('SELECT sha512_iterations, sha512_stored_key FROM users '
                           'WHERE server_host = ? AND username = ?', (HOST, user))
    assert rows and rows[0][0] and len(rows[0][1]) == 88, rows    # base64 of 64 bytes
    c = client()
    r = scram(c, user, 'pencil-new', 'SCRAM-SHA-512', 'n,,')
    assert r.ok, tostr(r.el)
