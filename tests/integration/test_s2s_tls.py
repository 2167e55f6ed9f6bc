"""Federation with certificates from a test CA: SASL EXTERNAL (XEP-0178)
between a.test and b.test, and a peer whose certificate does not verify
(c.test, self-signed) refused both ways when valid certificates are
required."""
import asyncio

import pytest

from parleytest import (FedParleyd, free_port, iq, login, logout, make_test_ca, next_message,
                        stanza_error, started, tostr, unique)

A, B, C = 'a.test', 'b.test', 'c.test'


@pytest.fixture(scope='module')
def trio(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2s-tls')
    ca = make_test_ca(base / 'ca', [A, B])
    pa, pb, pc = free_port(), free_port(), free_port()
    strict = {'require_valid_certificate': 'true'}
    a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret'}, peers={B: pb, C: pc},
                   s2s_port=pa, s2s=strict, ca=ca)
    b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb,
                   s2s=strict, ca=ca)
    # c.test: a self-signed certificate, and it would accept dialback
    c = FedParleyd(base / 'c', C, {('carl', C): 'carl-secret'}, peers={A: pa}, s2s_port=pc)
    with started(a, b, c):
        yield a, b, c


def test_sasl_external_with_ca_certificates(trio, run):
    a, b, c = trio

    async def go():
        alice = await login(a, 'alice', host=A, resource='e')
        bob = await login(b, 'bob', host=B, resource='e')
        body = unique('signed ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
        back = unique('countersigned ')
        bob.send_message(mto='alice@' + A, mbody=back, mtype='chat')
        await next_message(alice, pred=lambda m: m['body'] == back, timeout=15)
        await logout(alice, bob)
    run(go(), timeout=60)
    # a.test opened the stream with SASL EXTERNAL and asked for XEP-0288:
    # b.test's answers come back on it, one connection for both ways
    la = [ln.split('\t') for ln in a.ctl('s2s-list').stdout.splitlines()]
    lb = [ln.split('\t') for ln in b.ctl('s2s-list').stdout.splitlines()]
    assert [ln[:2] + ln[4:5] for ln in la if ln[1] == B] == [['out', B, 'external']], la
    assert sorted(ln[:2] + ln[4:5] for ln in lb if ln[1] == A) == \
        [['in', A, 'external'], ['out', A, 'external-bidi']], lb
    assert 'SASL EXTERNAL' not in a.log() or 'refused' not in a.log()


def test_wrong_certificate_refused_both_ways(trio, run):
    a, b, c = trio

    async def go():
        alice = await login(a, 'alice', host=A, resource='w')
        carl = await login(c, 'carl', host=C, resource='w')
        # a.test -> c.test: c.test's certificate does not verify
        el = await iq(alice, 'get', 'carl@' + C, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        # c.test -> a.test: a.test refuses c.test's dialback
        el = await iq(carl, 'get', 'alice@' + A, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        await logout(alice, carl)
    run(go(), timeout=60)
    assert 'certificate is not valid for c.test' in a.log()
    assert 'a valid certificate is required here' in a.log()
    # the verified peers go on
    test_sasl_external_with_ca_certificates(trio, run)
