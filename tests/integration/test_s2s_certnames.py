"""Certificate names for s2s (RFC 6120 13.7.1.2, XEP-0178, RFC 6125):
with valid certificates required (no dialback), a.test federates with
servers whose test-CA certificates name their domain only through

- an SRVName otherName "_xmpp-server.s.test" (s.test),
- an xmppAddr otherName "x.test" (x.test),
- a wildcard dNSName "*.wild.test" (chat.wild.test),

in both directions (each side checks the other's certificate), and
refuses n.test, whose certificate has n.test only in its common name and
an xmppAddr for another domain.  The unit tests (tests/unit/test-s2s.c)
cover the matching rules one by one."""
import pytest

from parleytest import (FedParleyd, free_port, iq, login, logout, make_test_ca, next_message,
                        stanza_error, started, tostr, unique)

A, S, X, W, N = 'a.test', 's.test', 'x.test', 'chat.wild.test', 'n.test'
XMPPADDR = 'otherName:1.3.6.1.5.5.7.8.5;UTF8:'
SRVNAME = 'otherName:1.3.6.1.5.5.7.8.7;IA5STRING:'


@pytest.fixture(scope='module')
def servers(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2s-certnames')
    ca = make_test_ca(base / 'ca', [A, S, X, W, N], sans={
        S: SRVNAME + '_xmpp-server.' + S,
        X: XMPPADDR + X,
        W: 'DNS:*.wild.test',
        N: XMPPADDR + 'other.test',
    })
    ports = {d: free_port() for d in (A, S, X, W, N)}
    out = {}
    for d in (A, S, X, W, N):
        peers = {p: ports[p] for p in (S, X, W, N)} if d == A else {A: ports[A]}
        out[d] = FedParleyd(base / d, d, {(user_of(d), d): 'secret-' + d}, peers=peers,
                            s2s_port=ports[d], s2s={'require_valid_certificate': 'true'}, ca=ca)
    with started(*out.values()):
        yield out


def user_of(d):
    return d.split('.')[0] + 'user'


@pytest.mark.parametrize('peer', [S, X, W])
def test_name_forms_accepted_both_ways(servers, run, peer):
    a, p = servers[A], servers[peer]

    async def go():
        ua = await login(a, user_of(A), host=A, resource='n')
        up = await login(p, user_of(peer), host=peer, resource='n')
        body = unique('to %s ' % peer)
        ua.send_message(mto='%s@%s' % (user_of(peer), peer), mbody=body, mtype='chat')
        await next_message(up, pred=lambda m: m['body'] == body, timeout=20)
        back = unique('from %s ' % peer)
        up.send_message(mto='%s@%s' % (user_of(A), A), mbody=back, mtype='chat')
        await next_message(ua, pred=lambda m: m['body'] == back, timeout=20)
        await logout(ua, up)
    run(go(), timeout=60)
    rows = [ln.split('\t') for ln in a.ctl('s2s-list').stdout.splitlines()]
    auth = [r[4] for r in rows if len(r) > 4 and r[1] == peer]
    assert auth and all(x.startswith('external') for x in auth), rows


def test_certificate_without_the_domain_is_refused(servers, run):
    a, n = servers[A], servers[N]

    async def go():
        ua = await login(a, user_of(A), host=A, resource='r')
        el = await iq(ua, 'get', '%s@%s' % (user_of(N), N), "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        await logout(ua)
    run(go(), timeout=60)
    assert 'does not name the domain' in a.log(), a.log()[-3000:]
