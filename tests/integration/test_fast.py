"""FAST (XEP-0484) over SASL2 on raw TLS sockets: a token asked for in a
SCRAM login, logins with it through HT-SHA-256-NONE and the channel
binding variants (the server's Responder data checked), rotation, count
replay, logout (invalidate), expiry, revocation with parleyctl, wrong
proofs, and a database that holds no token.  The HMACs are computed here
as a client does (draft-schmaus-kitten-sasl-ht)."""
import base64
import datetime
import hashlib
import hmac
import os
import time

import pytest

from conftest import start_server
from parleytest import HOST, Parleyd, ServerError, q, storage_kind, tostr, unique
from scramclient import NS_SASL2, Client, scram, tls_exporter, tls_server_end_point

NS_FAST = 'urn:xmpp:fast:0'
NS_BIND2 = 'urn:xmpp:bind:0'


@pytest.fixture(scope='module')
def short_server(tmp_path_factory):
    """A parleyd whose tokens live two seconds, and whose accounts are
    refused after one failed login."""
    srv = start_server(tmp_path_factory, 'parley-fast-ttl',
                       global_auth='  max_failures_per_user: 1\n  failure_window: 1h\n'
                       'fast:\n  token_ttl: 2s\n')
    yield srv
    srv.finish()


@pytest.fixture
def connect(server):
    clients = []

    def make(srv=None, tls12=False):
        c = Client((srv or server).port, tls12=tls12)
        clients.append(c)
        c.open()
        c.starttls()
        return c
    yield make
    for c in clients:
        c.close()


def _ua(ua):
    return "<user-agent xmlns='%s' id='%s'><software>test</software></user-agent>" % (NS_SASL2, ua)


def _request(mech='HT-SHA-256-NONE'):
    return "<request-token xmlns='%s' mechanism='%s'/>" % (NS_FAST, mech)


def _new_user(server):
    user = unique('fast')
    server.register(user, HOST, 'pencil-' + user)
    return user


def _token_by_scram(srv, c, user, ua, password=None, mech='HT-SHA-256-NONE'):
    """A SCRAM-SHA-256 login asking for a token; returns the <token/>."""
    r = scram(c, user, password or 'pencil-' + user, 'SCRAM-SHA-256', 'n,,', sasl2=True,
              extra=_ua(ua) + _request(mech))
    assert r.ok, tostr(r.el)
    tok = r.el.find(q(NS_FAST, 'token'))
    assert tok is not None, tostr(r.el)
    return tok


def _mac(token, label, cb=b''):
    return hmac.new(token.encode(), label + cb, hashlib.sha256).digest()


def _ht(c, user, token, mech='HT-SHA-256-NONE', cb=b'', extra='', proof=None):
    """One HT login; on success the Responder data is checked."""
    if proof is None:
        proof = _mac(token, b'Initiator', cb)
    ir = base64.b64encode(user.encode() + b'\0' + proof).decode()
    c.send("<authenticate xmlns='%s' mechanism='%s'><initial-response>%s</initial-response>%s"
           "</authenticate>" % (NS_SASL2, mech, ir, extra))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'success'), q(NS_SASL2, 'failure')),
                    what='SASL2 result')
    if el.tag == q(NS_SASL2, 'success'):
        ad = base64.b64decode(el.findtext(q(NS_SASL2, 'additional-data')))
        assert ad == _mac(token, b'Responder', cb), 'wrong Responder data'
    return el


def _ok(el):
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    return el


def _refused(el, cond='not-authorized'):
    assert el.tag == q(NS_SASL2, 'failure'), tostr(el)
    assert el.find(q('urn:ietf:params:xml:ns:xmpp-sasl', cond)) is not None, tostr(el)


def _rows(srv, user):
    return srv.db_query('SELECT ua_id, token_seed, last_count FROM fast_tokens WHERE server_host = ? '
                        'AND username = ? ORDER BY created_at', (HOST, user))


def _fast_mechs(c):
    f = c.features.find('%s/%s/%s' % (q(NS_SASL2, 'authentication'), q(NS_SASL2, 'inline'),
                                      q(NS_FAST, 'fast')))
    assert f is not None, tostr(c.features)
    return [m.text for m in f.findall(q(NS_FAST, 'mechanism'))]


def test_advertised_in_sasl2_only(connect):
    c = connect()
    mechs = _fast_mechs(c)
    assert 'HT-SHA-256-NONE' in mechs and 'HT-SHA-256-EXPR' in mechs and 'HT-SHA-256-ENDP' in mechs
    assert 'HT-SHA-256-UNIQ' not in mechs  # TLS 1.3: no tls-unique
    sasl2 = [m.text for m in c.features.find(q(NS_SASL2, 'authentication')).findall(
        q(NS_SASL2, 'mechanism'))]
    assert set(mechs) <= set(sasl2)
    assert not any(m.startswith('HT-') for m in c.mechanisms())
    c12 = connect(tls12=True)
    assert 'HT-SHA-256-UNIQ' in _fast_mechs(c12)


def test_not_offered_in_sasl1(server, connect):
    user = _new_user(server)
    c = connect()
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='HT-SHA-256-NONE'>%s</auth>"
           % base64.b64encode(user.encode() + b'\0' + b'x' * 32).decode())
    el = c.wait_for(lambda e: e.tag.endswith('}failure') or e.tag.endswith('}success'))
    assert el.find(q('urn:ietf:params:xml:ns:xmpp-sasl', 'invalid-mechanism')) is not None, tostr(el)


def test_token_issued_and_used_with_each_binding(server, connect):
    user = _new_user(server)
    tok = _token_by_scram(server, connect(), user, 'ua-phone')
    token = tok.get('token')
    assert token and len(token) >= 32
    expiry = datetime.datetime.strptime(tok.get('expiry'), '%Y-%m-%dT%H:%M:%SZ').replace(
        tzinfo=datetime.timezone.utc)
    left = expiry.timestamp() - time.time()
    assert 13.9 * 86400 < left <= 14 * 86400 + 5, tok.get('expiry')

    c = connect()
    el = _ok(_ht(c, user, token, extra=_ua('ua-phone')))
    assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == '%s@%s' % (user, HOST)
    assert c.bind('fast') == '%s@%s/fast' % (user, HOST)

    # a token works with the mechanism it was asked for, and no other
    # (XEP-0484 3.4): not with a channel binding it was not asked for ...
    c = connect()
    _refused(_ht(c, user, token, 'HT-SHA-256-EXPR', tls_exporter(c.sock)))
    bindings = (('HT-SHA-256-EXPR', False, lambda c: tls_exporter(c.sock)),
                ('HT-SHA-256-ENDP', False, lambda c: tls_server_end_point(server, c.sock)),
                ('HT-SHA-256-UNIQ', True, lambda c: c.sock.get_channel_binding('tls-unique')))
    for mech, tls12, cb in bindings:
        t = _token_by_scram(server, connect(tls12=tls12), user, 'ua-' + mech, mech=mech).get('token')
        c = connect(tls12=tls12)
        _ok(_ht(c, user, t, mech, cb(c)))
        # ... and the channel binding it was asked for cannot be dropped
        _refused(_ht(connect(tls12=tls12), user, t))
        assert 'user=%s@%s reason=wrong-mechanism' % (user, HOST) in server.log()
    # the binding is checked: NONE's proof under EXPR fails
    c = connect()
    t = _token_by_scram(server, connect(), user, 'ua-expr', mech='HT-SHA-256-EXPR').get('token')
    _refused(_ht(c, user, t, 'HT-SHA-256-EXPR', b''))
    # an inline bind works with a token login as with any other
    c = connect()
    el = _ok(_ht(c, user, token, extra="<bind xmlns='%s'><tag>fastc</tag></bind>" % NS_BIND2))
    assert el.find(q(NS_BIND2, 'bound')) is not None, tostr(el)


def test_request_token_needs_user_agent(server, connect):
    user = _new_user(server)
    r = scram(connect(), user, 'pencil-' + user, 'SCRAM-SHA-256', 'n,,', sasl2=True,
              extra=_request())
    assert not r.ok
    assert 'malformed-request' in r.condition, tostr(r.el)
    assert _rows(server, user) == []
    r = scram(connect(), user, 'pencil-' + user, 'SCRAM-SHA-256', 'n,,', sasl2=True,
              extra=_ua('ua-m') + "<fast xmlns='%s' count='-1'/>" % NS_FAST)
    assert not r.ok and 'malformed-request' in r.condition, tostr(r.el)


def test_rotation_keeps_the_previous_token_until_the_new_one_is_used(server, connect):
    user = _new_user(server)
    t1 = _token_by_scram(server, connect(), user, 'ua-1').get('token')
    # a token login asking for a new token (rotation)
    el = _ok(_ht(connect(), user, t1, extra=_ua('ua-1') + _request()))
    t2 = el.find(q(NS_FAST, 'token')).get('token')
    assert t2 and t2 != t1
    assert len(_rows(server, user)) == 2
    # the previous token still works until the new one is used ...
    _ok(_ht(connect(), user, t1, extra=_ua('ua-1')))
    _ok(_ht(connect(), user, t2, extra=_ua('ua-1')))
    # ... and no longer afterwards
    _refused(_ht(connect(), user, t1, extra=_ua('ua-1')))
    assert len(_rows(server, user)) == 1
    # another client's token is not touched by ua-1's rotation
    t3 = _token_by_scram(server, connect(), user, 'ua-2').get('token')
    _ok(_ht(connect(), user, t2, extra=_ua('ua-1') + _request()))
    _ok(_ht(connect(), user, t3, extra=_ua('ua-2')))


def test_rotation_answers_lost_twice_keep_the_token_in_use(server, connect):
    """XEP-0484 3.5: the token in use stays until a newer one is used, so
    a client that lost the answers of two rotations still logs in."""
    user = _new_user(server)
    t1 = _token_by_scram(server, connect(), user, 'ua-l').get('token')
    for _ in range(2):
        el = _ok(_ht(connect(), user, t1, extra=_ua('ua-l') + _request()))
        last = el.find(q(NS_FAST, 'token')).get('token')
        assert len(_rows(server, user)) == 2  # still two tokens at most
    _ok(_ht(connect(), user, t1, extra=_ua('ua-l')))
    # the token that is finally used replaces it
    _ok(_ht(connect(), user, last, extra=_ua('ua-l')))
    _refused(_ht(connect(), user, t1, extra=_ua('ua-l')))
    assert len(_rows(server, user)) == 1
    # a password login asking for a token keeps the client's newest one
    _token_by_scram(server, connect(), user, 'ua-l')
    assert len(_rows(server, user)) == 2
    _ok(_ht(connect(), user, last, extra=_ua('ua-l')))


def test_count_replay_is_refused(server, connect):
    user = _new_user(server)
    token = _token_by_scram(server, connect(), user, 'ua-c').get('token')

    def fast(n):
        return "<fast xmlns='%s' count='%d'/>" % (NS_FAST, n)
    _ok(_ht(connect(), user, token, extra=fast(5)))
    _refused(_ht(connect(), user, token, extra=fast(5)))
    _refused(_ht(connect(), user, token, extra=fast(2)))
    _ok(_ht(connect(), user, token, extra=fast(6)))
    assert _rows(server, user)[0][2] == 7  # 1 + the highest count used
    assert 'reason=replayed-count' in server.log()


def test_invalidate_logs_out(server, connect):
    user = _new_user(server)
    token = _token_by_scram(server, connect(), user, 'ua-x').get('token')
    _ok(_ht(connect(), user, token, extra="<fast xmlns='%s' invalidate='true'/>" % NS_FAST))
    assert _rows(server, user) == []
    _refused(_ht(connect(), user, token))


def test_revoked_with_parleyctl(server, connect):
    user = _new_user(server)
    token = _token_by_scram(server, connect(), user, 'ua-r').get('token')
    r = server.ctl('fast-list', '%s@%s' % (user, HOST))
    assert r.stdout.startswith('ua-r HT-SHA-256-NONE created '), r.stdout
    assert token not in r.stdout
    r = server.ctl('fast-revoke', '%s@%s' % (user, HOST), 'ua-r')
    assert r.returncode == 0, r.stderr
    _refused(_ht(connect(), user, token))


def test_wrong_hmac_is_a_failed_login(server, connect):
    user = _new_user(server)
    token = _token_by_scram(server, connect(), user, 'ua-w').get('token')
    c = connect()
    _refused(_ht(c, user, token, proof=os.urandom(32)))
    assert 'auth failed: ip=127.0.0.1 user=%s@%s reason=bad-token' % (user, HOST) in server.log()
    # the same stream may try again (a failed attempt, not a closed stream)
    _ok(_ht(c, user, token))
    # another user's token on this user: refused; the other user is unaffected
    other = _new_user(server)
    t_other = _token_by_scram(server, connect(), other, 'ua-w').get('token')
    _refused(_ht(connect(), user, t_other))
    _ok(_ht(connect(), other, t_other))
    # a malformed message is no login attempt
    c = connect()
    c.send("<authenticate xmlns='%s' mechanism='HT-SHA-256-NONE'><initial-response>%s"
           "</initial-response></authenticate>" % (NS_SASL2, base64.b64encode(b'nonul').decode()))
    el = c.wait_for(lambda e: e.tag == q(NS_SASL2, 'failure'))
    assert el.find(q('urn:ietf:params:xml:ns:xmpp-sasl', 'malformed-request')) is not None, tostr(el)


def test_expired_token_is_refused(short_server, connect):
    user = _new_user(short_server)
    tok = _token_by_scram(short_server, connect(short_server), user, 'ua-e')
    token = tok.get('token')
    _ok(_ht(connect(short_server), user, token))
    time.sleep(2.5)
    # XEP-0484 4.2: <credentials-expired/>, no failed login (no guess: the
    # client holds the token)
    _refused(_ht(connect(short_server), user, token), 'credentials-expired')
    assert 'HT-SHA-256-NONE refused: expired-token' in short_server.log()
    assert 'user=%s@%s reason=expired-token' % (user, HOST) not in short_server.log()
    # purged when the user next logs in
    _token_by_scram(short_server, connect(short_server), user, 'ua-e2')
    assert [r[0] for r in _rows(short_server, user)] == ['ua-e2']


@pytest.mark.skipif(storage_kind() != 'sqlite', reason='reads the SQLite file')
def test_database_holds_no_token(server, connect):
    user = _new_user(server)
    token = _token_by_scram(server, connect(), user, 'ua-db').get('token')
    rows = _rows(server, user)
    assert len(rows) == 1
    raw = base64.b64decode(token)
    for f in server.dir.glob('parley.db*'):
        data = f.read_bytes()
        assert token.encode() not in data and raw not in data, f
        assert base64.b64encode(hashlib.sha256(token.encode()).digest()) not in data
    # the seed alone gives nothing: the token needs the key file as well
    key = (server.dir / 'fast.key').read_bytes()
    assert len(key) == 32 and (os.stat(server.dir / 'fast.key').st_mode & 0o777) == 0o600
    seed = base64.b64decode(rows[0][1])
    derived = base64.b64encode(hmac.new(key, seed + ('%s@%s' % (user, HOST)).encode(),
                                        hashlib.sha256).digest()).decode()
    assert derived == token


def test_bad_key_file_refused(tmp_path):
    srv = Parleyd(tmp_path / 'badkey')
    (srv.dir / 'fast.key').write_bytes(b'short')
    with pytest.raises(ServerError) as e:
        srv.start()
    assert 'fast.key_file %s' % (srv.dir / 'fast.key') in str(e.value)
    assert 'must hold exactly 32 bytes' in str(e.value)


def test_token_of_a_vanished_account_is_refused(server, connect):
    """The auth chain is asked whether the account still exists: here its
    row goes while its token stays (as when a directory drops a user)."""
    user = _new_user(server)
    token = _token_by_scram(server, connect(), user, 'ua-v').get('token')
    server.db_query('DELETE FROM users WHERE server_host = ? AND username = ?', (HOST, user))
    assert len(_rows(server, user)) == 1
    _refused(_ht(connect(), user, token))
    assert 'user=%s@%s reason=unknown-user' % (user, HOST) in server.log()


def test_token_of_an_unregistered_account_is_refused_at_once(server, connect):
    """parleyctl unregister removes the account and its tokens: the very
    next token login fails (the token's storage job reads the account)."""
    user = _new_user(server)
    token = _token_by_scram(server, connect(), user, 'ua-u').get('token')
    _ok(_ht(connect(), user, token))
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 0, r.stderr
    _refused(_ht(connect(), user, token))


@pytest.fixture(scope='module')
def chain_server(tmp_path_factory):
    """A parleyd whose host asks two auth methods whether an account
    exists: a token login then asks the chain, after the token's job."""
    srv = start_server(tmp_path_factory, 'parley-fast-chain', host_auth='{ methods: [internal, anonymous] }')
    yield srv
    srv.finish()


def test_token_with_a_longer_auth_chain(chain_server, connect):
    """Token logins where the account check is the auth chain's, not the
    token job's: a good token works, and a token whose account row went
    is refused as an unknown user."""
    user = _new_user(chain_server)
    token = _token_by_scram(chain_server, connect(chain_server), user, 'ua-c').get('token')
    _ok(_ht(connect(chain_server), user, token))
    chain_server.db_query('DELETE FROM users WHERE server_host = ? AND username = ?', (HOST, user))
    _refused(_ht(connect(chain_server), user, token))
    assert 'user=%s@%s reason=unknown-user' % (user, HOST) in chain_server.log()


def test_disabled(tmp_path_factory):
    srv = start_server(tmp_path_factory, 'parley-fast-off', global_auth='fast:\n  enabled: false\n')
    try:
        c = Client(srv.port)
        c.open()
        c.starttls()
        a = c.features.find(q(NS_SASL2, 'authentication'))
        assert a.find('%s/%s' % (q(NS_SASL2, 'inline'), q(NS_FAST, 'fast'))) is None, tostr(a)
        assert not any(m.text.startswith('HT-') for m in a.findall(q(NS_SASL2, 'mechanism')))
        _refused(_ht(c, 'alice', 'x' * 44), 'invalid-mechanism')
        c.close()
        assert not (srv.dir / 'fast.key').exists()
    finally:
        srv.finish()
