"""Multiplexing of outgoing s2s streams (XEP-0220 2.4, "piggybacking"):
a.test's server also serves a2.test; once a.test -> b.test works, a2.test
reaches b.test over the same connection with a further <db:result/>; a
pair the peer refuses fails alone (its stanzas bounce, it backs off and
later tries a connection of its own).
Two parleyd instances on loopback, dialback with self-signed
certificates, names resolved through the static map."""
import asyncio
import time

import pytest

from parleytest import (FedParleyd, free_port, login, logout, make_test_ca, next_message, started,
                        unique)

A, A2, B, C = 'a.test', 'a2.test', 'b.test', 'c.test'


def rows(server, direction=None):
    out = server.ctl('s2s-list')
    assert out.returncode == 0, out.stderr
    got = [ln.split('\t') for ln in out.stdout.splitlines() if ln]
    return [r for r in got if direction is None or r[0] == direction]


@pytest.fixture(scope='module')
def fed(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2smux')
    pa, pb, pc = free_port(), free_port(), free_port()
    a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret', ('ada', A2): 'ada-secret'},
                   peers={B: pb, C: pc}, s2s_port=pa, more_domains=[A2])
    b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa, A2: pa}, s2s_port=pb)
    # c.test federates with a.test only: a2.test's pair is refused.
    c = FedParleyd(base / 'c', C, {('carl', C): 'carl-secret'}, peers={A: pa, A2: pa},
                   s2s_port=pc, s2s={'allow': '[%s]' % A})
    with started(a, b, c):
        yield a, b, c


def test_second_domain_shares_the_stream(fed, run):
    a, b, _ = fed

    async def go():
        alice = await login(a, 'alice', host=A, resource='m')
        ada = await login(a, 'ada', host=A2, resource='m')
        bob = await login(b, 'bob', host=B, resource='m')
        body = unique('from a ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        m = await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
        assert m['from'] == alice.boundjid
        body2 = unique('from a2 ')
        ada.send_message(mto='bob@' + B, mbody=body2, mtype='chat')
        m = await next_message(bob, pred=lambda m: m['body'] == body2, timeout=15)
        assert m['from'] == ada.boundjid
        back = unique('to a2 ')
        bob.send_message(mto=str(ada.boundjid), mbody=back, mtype='chat')
        m = await next_message(ada, pred=lambda m: m['body'] == back, timeout=15)
        await logout(alice, ada, bob)
    run(go(), timeout=60)

    outs = {(r[1], r[2]): r for r in rows(a, 'out')}
    assert (B, A) in outs and (B, A2) in outs, outs
    assert outs[(B, A)][4] == 'dialback' and outs[(B, A2)][4] == 'dialback', outs
    # one connection carries both pairs
    assert outs[(B, A)][7] == outs[(B, A2)][7] != '-', outs
    assert 'a2.test -> b.test: asking to share the stream of a.test -> b.test' in a.log()
    # status counts connections, not pairs
    assert 's2s: enabled, 1 out (0 opening)' in a.ctl('status').stdout
    # b.test validated both pairs on one incoming stream
    ins = {(r[1], r[2]): r for r in rows(b, 'in')}
    assert (A, B) in ins and (A2, B) in ins, ins
    assert ins[(A, B)][7] == ins[(A2, B)][7], ins


def test_shared_stream_closing_takes_both_pairs(fed, run):
    """s2s-close on the sender's side closes the connection; the next
    stanzas of both domains open anew and arrive."""
    a, b, _ = fed
    shared = [x for x in rows(a, 'out') if x[1] == B]
    assert len(shared) == 2 and shared[0][7] == shared[1][7], shared
    r = a.ctl('s2s-close', B)
    # the one outgoing connection (two pairs) and b.test's incoming streams
    assert r.returncode == 0 and 'closed' in r.stdout, (r.stdout, r.stderr)
    assert not [x for x in rows(a, 'out') if x[1] == B], rows(a)

    async def go():
        ada = await login(a, 'ada', host=A2, resource='c')
        alice = await login(a, 'alice', host=A, resource='c')
        bob = await login(b, 'bob', host=B, resource='c')
        body = unique('a2 first ')
        ada.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
        body = unique('then a ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
        await logout(alice, ada, bob)
    run(go(), timeout=60)
    outs = {(r[1], r[2]): r for r in rows(a, 'out')}
    # this time a2.test opened the connection and a.test rode on it
    assert outs[(B, A)][7] == outs[(B, A2)][7] != '-', outs


def test_refused_pair_bounces_and_a_keeps_working(fed, run):
    """c.test refuses a2.test's pair on a.test's stream with 'invalid':
    ada's message bounces with <internal-server-error/> (XEP-0220 2.1.1),
    and since a stream answered 'invalid' is to close (2.2.1), a.test's
    next message goes on a new one and arrives."""
    a, _, c = fed

    async def go():
        alice = await login(a, 'alice', host=A, resource='r')
        ada = await login(a, 'ada', host=A2, resource='r')
        carl = await login(c, 'carl', host=C, resource='r')
        body = unique('to c ')
        alice.send_message(mto='carl@' + C, mbody=body, mtype='chat')
        await next_message(carl, pred=lambda m: m['body'] == body, timeout=15)
        lost = unique('refused ')
        ada.send_message(mto='carl@' + C, mbody=lost, mtype='chat')
        err = await next_message(ada, pred=lambda m: m['type'] == 'error', timeout=20)
        assert err['error']['condition'] == 'internal-server-error', err
        assert err['body'] == lost, err
        body = unique('still ')
        alice.send_message(mto='carl@' + C, mbody=body, mtype='chat')
        await next_message(carl, pred=lambda m: m['body'] == body, timeout=15)
        await logout(alice, ada, carl)
    run(go(), timeout=90)
    log = a.log()
    assert 'a2.test -> c.test: asking to share the stream of a.test -> c.test' in log
    assert "closing the stream the peer answered 'invalid' on" in log, log[-3000:]
    assert 'opening a connection of its own' not in log, log[-3000:]
    assert [x for x in rows(a, 'out') if x[1] == C and x[2] == A and x[4] == 'dialback']


def test_multiplex_off_opens_a_connection_per_pair(tmp_path, run):
    pa, pb = free_port(), free_port()
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret', ('ada', A2): 'ada-secret'},
                   peers={B: pb}, s2s_port=pa, more_domains=[A2], s2s={'multiplex': 'false'})
    b = FedParleyd(tmp_path / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa, A2: pa},
                   s2s_port=pb)
    with started(a, b):
        async def go():
            alice = await login(a, 'alice', host=A, resource='o')
            ada = await login(a, 'ada', host=A2, resource='o')
            bob = await login(b, 'bob', host=B, resource='o')
            for who in (alice, ada):
                body = unique('off ')
                who.send_message(mto='bob@' + B, mbody=body, mtype='chat')
                await next_message(bob, pred=lambda m, body=body: m['body'] == body,
                                   timeout=15)
            await logout(alice, ada, bob)
        run(go(), timeout=60)
        outs = {(r[1], r[2]): r for r in rows(a, 'out')}
        assert outs[(B, A)][7] != outs[(B, A2)][7], outs
        assert 'asking to share the stream' not in a.log()


@pytest.mark.parametrize('a_names_a2', [False, True], ids=['dialback-for-a2', 'certificate-names-a2'])
def test_second_domain_on_a_sasl_external_stream(tmp_path, run, a_names_a2):
    """a.test's stream authenticated with SASL EXTERNAL (test CA): a2.test
    still has to authenticate on it.  When a.test's certificate names only
    a.test, b.test checks a2.test by dialback; when it names a2.test too,
    the certificate vouches for it at once (XEP-0344)."""
    sans = {A: 'DNS:%s,DNS:%s' % (A, A2)} if a_names_a2 else None
    ca = make_test_ca(tmp_path / 'ca', [A, B], sans=sans)
    pa, pb = free_port(), free_port()
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret', ('ada', A2): 'ada-secret'},
                   peers={B: pb}, s2s_port=pa, more_domains=[A2], ca=ca)
    b = FedParleyd(tmp_path / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa, A2: pa},
                   s2s_port=pb, ca=ca)
    with started(a, b):
        async def go():
            alice = await login(a, 'alice', host=A, resource='x')
            ada = await login(a, 'ada', host=A2, resource='x')
            bob = await login(b, 'bob', host=B, resource='x')
            for who in (alice, ada):
                body = unique('external ')
                who.send_message(mto='bob@' + B, mbody=body, mtype='chat')
                m = await next_message(bob, pred=lambda m, body=body: m['body'] == body,
                                       timeout=15)
                assert m['from'] == who.boundjid
            back = unique('back to a2 ')
            bob.send_message(mto=str(ada.boundjid), mbody=back, mtype='chat')
            await next_message(ada, pred=lambda m: m['body'] == back, timeout=15)
            await logout(alice, ada, bob)
        run(go(), timeout=60)
        outs = {(r[1], r[2]): r for r in rows(a, 'out')}
        assert outs[(B, A)][4] == 'external', outs
        assert outs[(B, A)][7] == outs[(B, A2)][7], outs
        ins = {(r[1], r[2]): r for r in rows(b, 'in')}
        assert ins[(A, B)][7] == ins[(A2, B)][7], ins
        log = b.log()
        how = 'dialback+certificate' if a_names_a2 else 'dialback)'
        assert 'a2.test authenticated for b.test (%s' % how in log, log[-3000:]


def test_strict_peer_refuses_the_pair_and_keeps_the_stream(tmp_path, run):
    """b.test requires valid certificates and a.test's names only a.test:
    b.test answers a2.test's <db:result/> with type='error' instead of
    closing the stream a.test uses.  That fails a2.test's pair alone: ada's
    message bounces with <remote-server-timeout/> (XEP-0220 2.1.1), the
    pair backs off, alice's stream goes on; once the back-off ends,
    a2.test tries a connection of its own (b.test refuses it too)."""
    ca = make_test_ca(tmp_path / 'ca', [A, B])
    pa, pb = free_port(), free_port()
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret', ('ada', A2): 'ada-secret'},
                   peers={B: pb}, s2s_port=pa, more_domains=[A2], ca=ca)
    b = FedParleyd(tmp_path / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa, A2: pa},
                   s2s_port=pb, ca=ca, s2s={'require_valid_certificate': 'true'})
    with started(a, b):
        async def go():
            alice = await login(a, 'alice', host=A, resource='s')
            ada = await login(a, 'ada', host=A2, resource='s')
            bob = await login(b, 'bob', host=B, resource='s')
            body = unique('first ')
            alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
            await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
            lost = unique('refused ')
            ada.send_message(mto='bob@' + B, mbody=lost, mtype='chat')
            err = await next_message(ada, pred=lambda m: m['type'] == 'error', timeout=20)
            assert err['error']['condition'] == 'remote-server-timeout', err
            assert err['body'] == lost
            backoff = [r for r in rows(a) if r[0] == 'backoff']
            assert [(r[1], r[2]) for r in backoff] == [(B, A2)], backoff
            body = unique('still ')
            alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
            await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
            deadline = time.monotonic() + 30
            while [r for r in rows(a) if r[0] == 'backoff']:   # at most 2 s
                assert time.monotonic() < deadline, rows(a)
                await asyncio.sleep(0.2)
            lost = unique('own connection ')
            ada.send_message(mto='bob@' + B, mbody=lost, mtype='chat')
            err = await next_message(ada, pred=lambda m: m['type'] == 'error'
                                     and m['body'] == lost, timeout=20)
            assert err['error']['condition'] == 'remote-server-not-found', err
            await logout(alice, ada, bob)
        run(go(), timeout=90)
        assert 'dialback for a2.test -> b.test refused: a valid certificate is required' \
            in b.log()
        log = a.log()
        assert 'a dialback error <remote-server-not-found/> from the peer for the pair on the ' \
            'shared stream' in log, log[-3000:]
        assert log.count('a2.test -> b.test: asking to share the stream') == 1, log[-3000:]
        outs = {(r[1], r[2]): r for r in rows(a, 'out')}
        assert outs[(B, A)][4] == 'external' and (B, A2) not in outs, outs


def test_peer_stanzas_for_a_rider_on_a_bidi_stream(tmp_path, run):
    """a.test's stream to a raw peer (r.test) is bidirectional (SASL
    EXTERNAL, XEP-0288) and a2.test rides on it by dialback: the peer's
    stanzas for a2.test on that stream are delivered, not refused with
    <host-unknown/> (which would close the stream and both pairs)."""
    import socket

    from parleytest import NS_DIALBACK, q
    from test_s2s_rawpeer import accept_external, header

    R = 'r.test'
    ca = make_test_ca(tmp_path / 'ca', [A, R])
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0))
    lst.listen(4)
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret', ('ada', A2): 'ada-secret'},
                   peers={R: lst.getsockname()[1]}, s2s_port=free_port(), more_domains=[A2],
                   ca=ca, s2s={'connect_timeout': '20s'})
    with lst, started(a):
        def negotiate():
            p, el = accept_external(a, ca, lst, R, ca[R])
            assert el.tag == '{urn:ietf:params:xml:ns:xmpp-sasl}auth', el
            p.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            p.wait_header()
            p.send(header(R, A, 'fake3') +
                   "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                   "</stream:features>")
            p.wait_for(lambda e: e.tag == '{jabber:server}message', what='alice message')
            return p

        def rider(p):
            el = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result')
            assert el.get('from') == A2 and el.get('to') == R, el
            p.send("<db:result from='%s' to='%s' type='valid'/>" % (R, A2))
            p.wait_for(lambda e: e.tag == '{jabber:server}message' and e.get('from', '')
                       .endswith(A2 + '/b'), what='ada message')
            p.send("<message from='rob@%s/x' to='ada@%s/b' type='chat'><body>back to a2</body>"
                   "</message>" % (R, A2))

        async def go():
            alice = await login(a, 'alice', host=A, resource='b')
            ada = await login(a, 'ada', host=A2, resource='b')
            alice.send_message(mto='rob@' + R, mbody='from a', mtype='chat')
            p = await asyncio.to_thread(negotiate)
            ada.send_message(mto='rob@' + R, mbody='from a2', mtype='chat')
            await asyncio.to_thread(rider, p)
            m = await next_message(ada, pred=lambda m: m['body'] == 'back to a2', timeout=15)
            assert m['from'] == 'rob@%s/x' % R
            await logout(alice, ada)
            p.close()
        run(go(), timeout=60)
        assert 'host-unknown' not in a.log(), a.log()[-3000:]


@pytest.mark.parametrize('answer,bounce', [
    ("<db:result from='%s' to='%s' type='error'><error type='cancel'><remote-connection-failed "
     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>", 'remote-server-timeout'),
    ("<db:result from='%s' to='%s' type='invalid'/>", 'internal-server-error')],
    ids=['error', 'invalid'])
def test_refused_rider_fails_its_pair_only(tmp_path, answer, bounce):
    """XEP-0220 2.1.1 and 2.5: a raw peer (r.test) verified a.test on
    parleyd's stream, then answers a2.test's <db:result/> on it with a
    dialback error or 'invalid'.  a2.test's queued stanza bounces at once
    with <remote-server-timeout/> (error) or <internal-server-error/>
    (invalid), not carried to a connection of its own, and the pair alone
    backs off.  After a dialback error a.test's pair goes on on the same
    stream; after 'invalid' (which the peer closes a stream for, 2.2.1)
    parleyd closes it."""
    import socket

    from parleytest import NS_DIALBACK, RawClient, q, stanza_error, tostr
    from test_s2s_rawpeer import accept_to_proceed, header

    R = 'r.test'
    ca = make_test_ca(tmp_path / 'ca', [A, R])
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0))
    lst.listen(4)
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret', ('ada', A2): 'ada-secret'},
                   peers={R: lst.getsockname()[1]}, s2s_port=free_port(), more_domains=[A2],
                   ca=ca, s2s={'connect_timeout': '60s', 'backoff': '30s', 'max_backoff': '60s'})
    with lst, started(a):
        alice = RawClient(a.port, host=A, timeout=15)
        alice.login('alice', 'alice-secret', resource='r')
        ada = RawClient(a.port, host=A2, timeout=15)
        ada.login('ada', 'ada-secret', resource='r')
        alice.send("<message to='rob@%s' type='chat'><body>one</body></message>" % R)
        p = accept_to_proceed(lst, R, 'rr1')
        p.wrap_server(ca[R] + (ca['ca'],))
        p.wait_header()
        p.send(header(R, A, 'rr2') + "<stream:features><dialback xmlns='urn:xmpp:features:"
               "dialback'><errors/></dialback></stream:features>")
        el = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result')
        assert el.get('from') == A, tostr(el)
        p.send("<db:result from='%s' to='%s' type='valid'/>" % (R, A))
        p.wait_for(lambda e: e.tag == '{jabber:server}message', what='alice message')

        ada.send("<message to='rob@%s' id='m2' type='chat'><body>two</body></message>" % R)
        el = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result of a2')
        assert el.get('from') == A2 and el.get('to') == R, tostr(el)
        p.send(answer % (R, A2))
        el = ada.wait_for(lambda e: e.get('id') == 'm2', what='the bounce')
        assert stanza_error(el) == bounce, tostr(el)
        # the pair backs off: the next stanza bounces at once, alone
        ada.send("<message to='rob@%s' id='m3' type='chat'><body>three</body></message>" % R)
        el = ada.wait_for(lambda e: e.get('id') == 'm3', what='the bounce')
        assert stanza_error(el) == bounce, tostr(el)
        backoff = [r for r in rows(a) if r[0] == 'backoff']
        assert [(r[1], r[2], r[4]) for r in backoff] == [(R, A2, bounce)], backoff

        if bounce == 'remote-server-timeout':
            alice.send("<message to='rob@%s' type='chat'><body>four</body></message>" % R)
            el = p.wait_for(lambda e: e.tag == '{jabber:server}message', what='alice message')
            assert el.findtext('{jabber:server}body') == 'four', tostr(el)
        else:
            assert p.next(timeout=15) is None, 'parleyd kept the stream'
            assert "closing the stream the peer answered 'invalid' on" in a.log()
        p.close()
        alice.close()
        ada.close()
        assert 'opening a connection of its own' not in a.log(), a.log()[-3000:]
