"""auth.reveal_missing_scram_keys: a SCRAM hash an account has no keys
for (an account with SCRAM-SHA-1 keys only) is refused at once, at the
client-first message that names the user, with <invalid-mechanism/> and
a <text/>, in SASL and SASL2 alike; it is no failed login, so repeating
it never reaches the limits.  Unknown names and accounts that have the
keys are answered as without the option."""
import pytest

import parleytest
from parleytest import NS_SASL, find_lines, q, tostr, unique
from scramclient import NS_SASL2, scram
from test_scram_cb import client  # noqa: F401  (the fixture: a client after STARTTLS)
from test_scram_sha1_only import _declined, _sha1_only, slixmpp_login
from test_scram_sha512 import _wait_log


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = parleytest.Parleyd(
        tmp_path_factory.mktemp('reveal'),
        global_auth='  reveal_missing_scram_keys: true\n  max_failures_per_ip: 20\n'
        '  max_failures_per_user: 10\n  failure_window: 10m\n')
    srv.start_with_users()
    yield srv
    srv.finish()


@pytest.mark.parametrize('sasl2', [False, True])
@pytest.mark.parametrize('mech', ['SCRAM-SHA-256', 'SCRAM-SHA-512'])
def test_invalid_mechanism_at_once_then_sha1(server, client, mech, sasl2):
    user = _sha1_only(server)
    pw = server.password(user)
    c = client()
    r = scram(c, user, pw, mech, 'n,,', sasl2=sasl2)
    assert not r.server_first, 'a challenge: the exchange was not refused at once'
    assert r.condition == ['invalid-mechanism'], tostr(r.el)
    ns = NS_SASL2 if sasl2 else NS_SASL
    assert 'no %s credentials' % mech in (r.el.findtext(q(ns, 'text')) or ''), tostr(r.el)
    assert r.elapsed < 0.15, 'answered after the failure delay: %.2f s' % r.elapsed
    assert _wait_log(server, _declined(user, mech))
    r = scram(c, user, pw, 'SCRAM-SHA-1', 'n,,', sasl2=sasl2)
    assert r.ok, tostr(r.el)


def test_never_counted(server, client):
    """25 such refusals from one address on one stream (more than the 20
    per address, 10 per account and 3 per stream allowed), then a correct
    login on the same stream."""
    user = _sha1_only(server)
    c = client()
    for i in range(25):
        r = scram(c, user, server.password(user), 'SCRAM-SHA-256', 'n,,', sasl2=i % 2 == 1)
        assert r.condition == ['invalid-mechanism'], (i, tostr(r.el))
    r = scram(c, user, server.password(user), 'SCRAM-SHA-1', 'n,,')
    assert r.ok, tostr(r.el)
    assert not find_lines(r'reason=rate-limited', server.log())


def test_unknown_user_and_full_account_unchanged(server, client):
    ghost = unique('ghost')
    c = client()
    r = scram(c, ghost, 'whatever', 'SCRAM-SHA-256', 'n,,', sasl2=True)
    assert r.server_first and r.condition == ['not-authorized'], tostr(r.el)
    assert _wait_log(server, r'auth failed: ip=127\.0\.0\.1 user=%s@\S+ reason=unknown-user$' % ghost)
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256', 'n,,', sasl2=True)
    assert r.ok, tostr(r.el)


def test_raw_xml_sasl2(server, client):
    """The wire form, written by hand: <authenticate/> with the
    client-first message, answered by a SASL2 <failure/>."""
    import base64
    user = _sha1_only(server)
    c = client()
    first = base64.b64encode(('n,,n=%s,r=abcdefghijklmnop' % user).encode()).decode()
    c.send("<authenticate xmlns='%s' mechanism='SCRAM-SHA-256-PLUS'><initial-response>%s"
           "</initial-response></authenticate>" % (NS_SASL2, base64.b64encode(
               ('p=tls-exporter,,n=%s,r=abcdefghijklmnop' % user).encode()).decode()))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'failure'), q(NS_SASL2, 'challenge')))
    assert el.tag == q(NS_SASL2, 'failure'), tostr(el)
    assert el.find(q(NS_SASL, 'invalid-mechanism')) is not None, tostr(el)
    assert el.find(q(NS_SASL2, 'text')) is not None, tostr(el)
    c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-512'>%s</auth>" % (NS_SASL, first))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'failure'), q(NS_SASL, 'challenge')))
    assert el.tag == q(NS_SASL, 'failure'), tostr(el)
    assert el.find(q(NS_SASL, 'invalid-mechanism')) is not None, tostr(el)


def test_slixmpp_falls_back_to_sha1(server, run):
    user = _sha1_only(server)
    mech, tried = slixmpp_login(server, run, user)
    assert mech == 'SCRAM-SHA-1', (mech, tried)
    assert [m for m in tried if not m.endswith('-PLUS')] == ['SCRAM-SHA-512', 'SCRAM-SHA-256'], tried
    assert _wait_log(server, _declined(user, 'SCRAM-SHA-512'))
