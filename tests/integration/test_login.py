"""Logging in: STARTTLS, direct TLS, SASL mechanisms and failures, resource binding."""
import pytest

from parleytest import (HOST, NS_BIND, NS_SASL, NS_SESSION, NS_STREAM, NS_TLS, RawClient, login,
                        logout, q, tostr)


@pytest.mark.parametrize('mech', ['SCRAM-SHA-1', 'SCRAM-SHA-256', 'PLAIN'])
def test_login_with_mechanism(server, run, mech):
    async def go():
        c = await login(server, 'alice', mech=mech)
        assert c.boundjid.bare == 'alice@' + HOST
        assert c.boundjid.resource
        await logout(c)
    run(go())


@pytest.fixture
def tls12(monkeypatch):
    """slixmpp clients limited to TLS 1.2: slixmpp binds with tls-unique
    only, which exists on TLS 1.2 only (RFC 9266); TLS 1.3 is covered by
    test_scram_cb.py."""
    import ssl
    import parleytest
    make = parleytest.make_client

    def make_tls12(*args, **kw):
        c = make(*args, **kw)
        c.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        return c
    monkeypatch.setattr(parleytest, 'make_client', make_tls12)


@pytest.mark.parametrize('mech', ['SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS', None])
def test_login_with_channel_binding(server, run, tls12, mech):
    """slixmpp binds to the TLS 1.2 channel with tls-unique; mech None: its
    own choice among what the server offers."""
    async def go():
        c = await login(server, 'alice', mech=mech)
        assert c.boundjid.bare == 'alice@' + HOST
        await logout(c)
    run(go())


def test_scram_downgrade_detected(server, run, tls12):
    """A client that supports channel binding but believes the server does
    not (gs2 flag 'y') is refused on TLS 1.2, where the server offered -PLUS
    with tls-unique (RFC 5802); on TLS 1.3 see test_scram_cb.py."""
    from parleytest import LoginFailed

    async def go():
        with pytest.raises(LoginFailed):
            await login(server, 'alice', mech='SCRAM-SHA-256', claim_cb_support=True, timeout=10)
    run(go())


def test_direct_tls_login(server, run):
    """XEP-0368: TLS from the first byte on the direct-TLS port."""
    async def go():
        c = await login(server, 'bob', mech='SCRAM-SHA-256', direct_tls=True)
        assert c.boundjid.bare == 'bob@' + HOST
        await logout(c)
    run(go())


def test_direct_tls_features_have_no_starttls(server, raw):
    c = raw(direct_tls=True)
    f = c.open()
    assert f.find(q(NS_TLS, 'starttls')) is None, tostr(f)
    assert 'PLAIN' in c.mechanisms(), tostr(f)


def test_features_before_tls_offer_only_starttls(server, raw):
    c = raw()
    f = c.open()
    st = f.find(q(NS_TLS, 'starttls'))
    assert st is not None, tostr(f)
    assert st.find(q(NS_TLS, 'required')) is not None, tostr(f)
    assert f.find(q(NS_SASL, 'mechanisms')) is None, tostr(f)
    assert f.find(q(NS_BIND, 'bind')) is None, tostr(f)


def test_auth_before_starttls_is_refused(server, raw):
    c = raw()
    c.open()
    c.send("<auth xmlns='%s' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>" % NS_SASL)
    el = c.next()
    # a stream error (policy-violation / not-authorized) or a SASL failure,
    # never a success
    assert el is not None, 'stream closed without a word'
    assert el.tag != q(NS_SASL, 'success'), tostr(el)
    assert el.tag in (q(NS_STREAM, 'error'), q(NS_SASL, 'failure')), tostr(el)


def test_plus_mechanisms_advertised_after_tls(server, raw):
    c = raw()
    c.open()
    c.starttls()
    mechs = c.mechanisms()
    for m in ('SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS', 'PLAIN'):
        assert m in mechs, mechs


def test_plus_mechanisms_advertised_on_direct_tls(server, raw):
    c = raw(direct_tls=True)
    c.open()
    mechs = c.mechanisms()
    assert 'SCRAM-SHA-256-PLUS' in mechs and 'SCRAM-SHA-1-PLUS' in mechs, mechs


def _sasl_condition(el):
    assert el.tag == q(NS_SASL, 'failure'), tostr(el)
    return [c.tag.split('}')[-1] for c in el if not c.tag.endswith('}text')]


def test_wrong_password_not_authorized(server, raw):
    c = raw()
    c.open()
    c.starttls()
    el = c.auth_plain('alice', 'not-her-password')
    assert _sasl_condition(el) == ['not-authorized']


def test_unknown_user_not_authorized(server, raw):
    c = raw()
    c.open()
    c.starttls()
    el = c.auth_plain('nosuchuser', 'whatever')
    assert _sasl_condition(el) == ['not-authorized']


def test_foreign_authzid_refused(server, raw):
    """PLAIN naming another account (or a full JID) as the authorization
    identity gets <invalid-authzid/>; the same stream may then log in.
    (Under the sanitizer build, the server's exit also shows that the
    refused identity's parsed JID was freed.)"""
    c = raw()
    c.open()
    c.starttls()
    pw = server.password('alice')
    for authzid in ('bob@%s' % HOST, 'alice@%s/res' % HOST, 'alice@elsewhere.example'):
        el = c.auth_plain('alice', pw, authzid=authzid)
        assert _sasl_condition(el) == ['invalid-authzid'], (authzid, tostr(el))
    assert c.auth_plain('alice', pw, authzid='alice@%s' % HOST).tag == q(NS_SASL, 'success')


def test_retry_after_failure_succeeds(server, raw):
    c = raw()
    c.open()
    c.starttls()
    assert c.auth_plain('alice', 'wrong').tag == q(NS_SASL, 'failure')
    assert c.auth_plain('alice', server.password('alice')).tag == q(NS_SASL, 'success')


def test_plain_without_initial_response(server, raw):
    """<auth/> with no text has no initial response: the server sends an
    empty challenge and the client's <response/> is the first message
    (RFC 6120 §6.4.2, RFC 4422 §3.3); "=" is an empty initial response."""
    import base64
    c = raw()
    c.open()
    c.starttls()
    c.send("<auth xmlns='%s' mechanism='PLAIN'/>" % NS_SASL)
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'challenge'), q(NS_SASL, 'failure')))
    assert el.tag == q(NS_SASL, 'challenge') and not (el.text or '').strip('='), tostr(el)
    token = base64.b64encode(('\0alice\0%s' % server.password('alice')).encode()).decode()
    c.send("<response xmlns='%s'>%s</response>" % (NS_SASL, token))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'success'), q(NS_SASL, 'failure')))
    assert el.tag == q(NS_SASL, 'success'), tostr(el)
    c = raw()
    c.open()
    c.starttls()
    c.send("<auth xmlns='%s' mechanism='PLAIN'>=</auth>" % NS_SASL)
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'challenge'), q(NS_SASL, 'failure')))
    assert _sasl_condition(el) == ['malformed-request'], tostr(el)


def test_failed_scram_login_with_slixmpp(server, run):
    from parleytest import LoginFailed

    async def go():
        with pytest.raises(LoginFailed):
            await login(server, 'alice', password='wrong-password', mech='SCRAM-SHA-256', timeout=10)
    run(go())


def test_bind_client_chosen_resource(server, raw):
    c = raw()
    jid = c.login('alice', server.password('alice'), resource='laptop')
    assert jid == 'alice@%s/laptop' % HOST


def test_bind_server_generated_resource(server, raw):
    c = raw()
    jid = c.login('alice', server.password('alice'))
    bare, _, resource = jid.partition('/')
    assert bare == 'alice@' + HOST
    assert resource


def test_two_generated_resources_differ(server, raw):
    a, b = raw(), raw()
    ja = a.login('alice', server.password('alice'))
    jb = b.login('alice', server.password('alice'))
    assert ja != jb


def test_same_resource_twice_first_gets_conflict(server, raw):
    first, second = raw(), raw()
    first.login('bob', server.password('bob'), resource='dup')
    jid = second.login('bob', server.password('bob'), resource='dup')
    assert jid.startswith('bob@%s/' % HOST)
    assert first.stream_error(timeout=10) == 'conflict'
    # the new session works
    el = second.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert el.get('type') == 'result', tostr(el)


def test_legacy_session_iq_accepted(server, raw):
    c = raw()
    c.login('alice', server.password('alice'), presence=False)
    el = c.iq('set', "<session xmlns='%s'/>" % NS_SESSION)
    assert el.get('type') == 'result', tostr(el)


def test_stream_header_from_server(server, raw):
    c = raw()
    c.open()
    assert c.header.get('from') == HOST
    assert c.header.get('id')
    assert c.header.get('version') == '1.0'


def test_unknown_host_host_unknown(server):
    c = RawClient(server.port, host='nowhere.example')
    try:
        c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               "xmlns:stream='%s' to='nowhere.example' version='1.0'>" % NS_STREAM)
        assert c.stream_error() == 'host-unknown'
    finally:
        c.close()
