"""SCRAM channel binding (RFC 5802, RFC 5929, RFC 9266, XEP-0440), the gs2
flag 'y' and the XEP-0474 downgrade protection hash, with the SCRAM client
of scramclient.py over raw sockets, on TLS 1.3 and on TLS 1.2."""
import hashlib
import time

import pytest

import parleytest
from parleytest import HOST, find_lines, login, logout, tostr
from scramclient import (Client, _b64, scram, ssdp_hash, tls_exporter,  # noqa: F401
                         tls_server_end_point)


@pytest.fixture
def client(server):
    """client(tls12=False): a Client after STARTTLS (TLS 1.3, or 1.2)."""
    clients = []

    def make(tls12=False):
        c = Client(server.port, tls12=tls12)
        clients.append(c)
        c.open()
        c.starttls()
        assert c.sock.version() == ('TLSv1.2' if tls12 else 'TLSv1.3'), c.sock.version()
        return c
    yield make
    for c in clients:
        c.close()


def _authenticated_lines(server, user, mech, cbtype=None):
    tail = r' authenticated with %s%s$' % (mech, r' \(%s\)' % cbtype if cbtype else '')
    return find_lines(r'%s@%s%s' % (user, HOST.replace('.', r'\.'), tail), server.log())


def _wait_log(server, user, mech, cbtype=None, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _authenticated_lines(server, user, mech, cbtype):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------
# advertised types (XEP-0440)
# ---------------------------------------------------------------------------

def test_types_on_tls13(client):
    c = client()
    assert sorted(c.cb_types()) == ['tls-exporter', 'tls-server-end-point'], tostr(c.features)
    assert 'SCRAM-SHA-256-PLUS' in c.mechanisms()


def test_types_on_tls12(client):
    c = client(tls12=True)
    assert sorted(c.cb_types()) == ['tls-server-end-point', 'tls-unique'], tostr(c.features)
    assert 'SCRAM-SHA-256-PLUS' in c.mechanisms()


# ---------------------------------------------------------------------------
# -PLUS with each type
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('mech', ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS'])
def test_plus_tls_exporter(server, client, mech):
    c = client()
    r = scram(c, 'alice', server.password('alice'), mech, 'p=tls-exporter,,', tls_exporter(c.sock))
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'alice', mech, 'tls-exporter'), 'no "authenticated with" log line'


@pytest.mark.parametrize('tls12', [False, True])
def test_plus_tls_server_end_point(server, client, tls12):
    c = client(tls12=tls12)
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,',
              tls_server_end_point(server, c.sock))
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'bob', 'SCRAM-SHA-256-PLUS', 'tls-server-end-point')


def test_plus_tls_unique_on_tls12(server, client):
    c = client(tls12=True)
    r = scram(c, 'carol', server.password('carol'), 'SCRAM-SHA-256-PLUS', 'p=tls-unique,,',
              c.sock.get_channel_binding('tls-unique'))
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'carol', 'SCRAM-SHA-256-PLUS', 'tls-unique')


def test_tls_exporter_refused_on_tls12(server, client):
    """Not advertised on TLS 1.2 (no exporter binding there)."""
    c = client(tls12=True)
    r = scram(c, 'carol', server.password('carol'), 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,', b'x' * 32)
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert r.server_first == {}, 'refused at the client-first message'


def test_tls_unique_refused_on_tls13(server, client):
    """tls-unique is undefined on TLS 1.3 (RFC 9266): a client naming it is
    refused at once, before any password is tried, without the failed-login
    delay and without using up the stream's attempts; the stream goes on."""
    c = client()
    for _ in range(4):   # more than auth_attempts (3): none of them counts
        r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256-PLUS', 'p=tls-unique,,',
                  c.sock.get_channel_binding('tls-unique'))
        assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
        assert r.server_first == {}, 'refused at the client-first message'
        assert r.elapsed < 0.15, 'answered after the failed-login delay (0.2s): %.3fs' % r.elapsed
    assert find_lines(r'SCRAM-SHA-256-PLUS refused: unsupported-channel-binding-type', server.log())
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,',
              tls_exporter(c.sock))
    assert r.ok, tostr(r.el)


def test_unknown_type_refused(server, client):
    c = client()
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256-PLUS', 'p=tls-nonsense,,', b'x')
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


@pytest.mark.parametrize('cbtype', ['tls-exporter', 'tls-server-end-point'])
def test_wrong_binding_data(server, client, cbtype):
    c = client()
    good = tls_exporter(c.sock) if cbtype == 'tls-exporter' else tls_server_end_point(server, c.sock)
    bad = bytes([good[0] ^ 1]) + good[1:]
    r = scram(c, 'erin', server.password('erin'), 'SCRAM-SHA-256-PLUS', 'p=%s,,' % cbtype, bad)
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


def test_binding_from_another_connection(server, client):
    """The exporter value of one TLS connection does not log in on another."""
    a = client()
    b = client()
    r = scram(b, 'erin', server.password('erin'), 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,',
              tls_exporter(a.sock))
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


# ---------------------------------------------------------------------------
# the gs2 flags 'y' and 'n'
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('mech', ['SCRAM-SHA-256', 'SCRAM-SHA-1'])
def test_y_accepted_on_tls13(server, client, mech):
    """'y' on TLS 1.3: the client knows channel binding but none of the
    types on offer (tls-unique is not one there); accepted."""
    c = client()
    r = scram(c, 'alice', server.password('alice'), mech, 'y,,')
    assert r.ok, tostr(r.el)


def test_y_refused_on_tls12(server, client):
    """'y' on TLS 1.2, where -PLUS is offered with tls-unique, the type every
    channel-binding SCRAM client implements: the -PLUS mechanisms must have
    been removed on the way, so the exchange fails (RFC 5802 section 6)."""
    c = client(tls12=True)
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256', 'y,,')
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert r.server_first == {}
    assert find_lines(r'SCRAM-SHA-256 refused: server-does-support-channel-binding', server.log())


@pytest.mark.parametrize('tls12', [False, True])
def test_n_accepted(server, client, tls12):
    c = client(tls12=tls12)
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-256', 'n,,')
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'bob', 'SCRAM-SHA-256')


def test_plus_requires_p_flag(server, client):
    c = client()
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-256-PLUS', 'n,,')
    assert not r.ok and r.condition == ['malformed-request'], tostr(r.el)


# ---------------------------------------------------------------------------
# XEP-0474: the hash of the advertised lists in server-first
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('tls12', [False, True])
@pytest.mark.parametrize('mech', ['SCRAM-SHA-1', 'SCRAM-SHA-256'])
def test_ssdp_hash(server, client, tls12, mech):
    c = client(tls12=tls12)
    r = scram(c, 'carol', server.password('carol'), mech, 'n,,')   # scram() checks h=
    assert r.ok, tostr(r.el)
    assert 'h' in r.server_first


def test_ssdp_hash_detects_a_changed_list(server, client):
    """A client that saw a list without -PLUS computes another hash."""
    c = client()
    r = scram(c, 'carol', server.password('carol'), 'SCRAM-SHA-256', 'n,,', check_ssdp=False)
    assert r.ok
    stripped = '\x1e'.join(sorted(m for m in c.mechanisms() if not m.endswith('-PLUS')))
    assert r.server_first['h'] != _b64(hashlib.sha256(stripped.encode()).digest())


def test_ssdp_for_unknown_user(server, client):
    """An unknown user gets the same attribute (no user enumeration)."""
    c = client()
    r = scram(c, 'nobody', 'whatever', 'SCRAM-SHA-256', 'n,,')
    assert not r.ok and r.condition == ['not-authorized']
    assert r.server_first.get('h') == ssdp_hash(c, 'sha256')


# ---------------------------------------------------------------------------
# Debian 12's slixmpp (knows tls-unique only) on TLS 1.3
# ---------------------------------------------------------------------------

def test_slixmpp_logs_in_with_scram_on_tls13(server, run):
    """slixmpp 1.8.3 picks SCRAM-SHA-256-PLUS with tls-unique first; that is
    refused on TLS 1.3 (at once, not counted), as is SCRAM-SHA-1-PLUS; it
    then uses SCRAM-SHA-256 with the flag 'y', which is accepted: it logs in
    with SCRAM, never with PLAIN.  (parleytest.login treats every SASL
    failure as fatal; slixmpp itself goes on to its next mechanism.)"""
    import asyncio
    before = len(server.log().splitlines())

    async def go():
        c = parleytest.make_client('erin@' + HOST, server.password('erin'))
        done = asyncio.get_running_loop().create_future()
        tried = []

        def finish(result=None, exc=None):
            if not done.done():
                done.set_exception(exc) if exc is not None else done.set_result(result)
        c.add_event_handler('session_start', lambda e: finish(True))
        c.add_event_handler('failed_auth', lambda e: tried.append(c['feature_mechanisms'].mech.name))
        c.add_event_handler('no_auth', lambda e: finish(exc=AssertionError('no usable mechanism')))
        c.add_event_handler('failed_all_auth', lambda e: finish(exc=AssertionError('all failed')))
        c.add_event_handler('disconnected', lambda e: finish(exc=AssertionError('disconnected')))
        c.connect(address=('127.0.0.1', server.port), force_starttls=True)
        try:
            await asyncio.wait_for(done, 20)
            assert c.boundjid.bare == 'erin@' + HOST
            mech = c['feature_mechanisms'].mech.name
        finally:
            c.abort()
        return mech, tried
    mech, tried = run(go())
    assert mech == 'SCRAM-SHA-256', (mech, tried)
    # the two -PLUS attempts with tls-unique, refused
    assert tried == ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS'], tried
    lines = server.log().splitlines()[before:]
    ok = [ln for ln in lines if 'erin@%s authenticated with' % HOST in ln]
    assert len(ok) == 1, lines
    assert ok[0].endswith('authenticated with SCRAM-SHA-256'), ok[0]
    assert not [ln for ln in lines if 'auth failed' in ln], lines


def test_slixmpp_scram_sha256_flag_y_on_tls13(server, run):
    """slixmpp told to use SCRAM-SHA-256 sends 'y' on TLS 1.3: accepted."""
    before = len(server.log().splitlines())

    async def go():
        c = await login(server, 'bob', mech='SCRAM-SHA-256', claim_cb_support=True)
        await logout(c)
    run(go())
    lines = server.log().splitlines()[before:]
    assert any(ln.endswith('bob@%s authenticated with SCRAM-SHA-256' % HOST) for ln in lines), lines
