"""iqs addressed to the server itself: disco, version, ping, time, and iq rules."""
import re

import pytest

from parleytest import (HOST, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_TIME, NS_VERSION, iq, login,
                        logout, q, stanza_error, tostr)


@pytest.fixture
def alice(server, run):
    c = run(login(server, 'alice', resource='iq'))
    yield c
    run(logout(c))


def test_disco_info(server, run, alice):
    el = run(iq(alice, 'get', HOST, "<query xmlns='%s'/>" % NS_DISCO_INFO))
    assert el.get('type') == 'result', tostr(el)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    assert query is not None, tostr(el)
    identities = [(i.get('category'), i.get('type')) for i in query.findall(q(NS_DISCO_INFO, 'identity'))]
    assert ('server', 'im') in identities, tostr(el)
    features = {f.get('var') for f in query.findall(q(NS_DISCO_INFO, 'feature'))}
    for ns in (NS_DISCO_INFO, NS_VERSION, NS_PING, NS_TIME, 'jabber:iq:register'):
        assert ns in features, (ns, sorted(features))


def test_disco_items(server, run, alice):
    el = run(iq(alice, 'get', HOST, "<query xmlns='%s'/>" % NS_DISCO_ITEMS))
    assert el.get('type') == 'result', tostr(el)
    assert el.find(q(NS_DISCO_ITEMS, 'query')) is not None, tostr(el)


def test_version(server, run, alice):
    el = run(iq(alice, 'get', HOST, "<query xmlns='%s'/>" % NS_VERSION))
    assert el.get('type') == 'result', tostr(el)
    query = el.find(q(NS_VERSION, 'query'))
    assert query is not None, tostr(el)
    assert query.findtext(q(NS_VERSION, 'name')) == 'Parley'
    assert query.findtext(q(NS_VERSION, 'version'))
    # show_os is off by default
    assert query.find(q(NS_VERSION, 'os')) is None, tostr(el)


def test_ping_server(server, run, alice):
    el = run(iq(alice, 'get', HOST, "<ping xmlns='%s'/>" % NS_PING))
    assert el.get('type') == 'result', tostr(el)
    assert el.get('from') == HOST


def test_entity_time(server, run, alice):
    el = run(iq(alice, 'get', HOST, "<time xmlns='%s'/>" % NS_TIME))
    assert el.get('type') == 'result', tostr(el)
    t = el.find(q(NS_TIME, 'time'))
    assert t is not None, tostr(el)
    assert re.fullmatch(r'[+-]\d\d:\d\d|Z', t.findtext(q(NS_TIME, 'tzo')) or ''), tostr(el)
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z', t.findtext(q(NS_TIME, 'utc')) or ''), tostr(el)


def test_iq_without_to_goes_to_own_account(server, run, alice):
    """An iq with no 'to' is handled for the sender's account (RFC 6120 10.3.3)."""
    el = run(iq(alice, 'get', None, "<query xmlns='jabber:iq:roster'/>"))
    assert el.get('type') == 'result', tostr(el)


def test_iq_with_two_children_bad_request(server, raw):
    c = raw()
    c.login('alice', server.password('alice'), presence=False)
    el = c.iq('get', "<ping xmlns='%s'/><time xmlns='%s'/>" % (NS_PING, NS_TIME), to=HOST)
    assert stanza_error(el) == 'bad-request', tostr(el)


def test_iq_get_without_child_bad_request(server, raw):
    c = raw()
    c.login('alice', server.password('alice'), presence=False)
    el = c.iq('get', '', to=HOST)
    assert stanza_error(el) == 'bad-request', tostr(el)


def test_unknown_namespace_service_unavailable(server, run, alice):
    el = run(iq(alice, 'get', HOST, "<query xmlns='urn:example:nothing-here'/>"))
    assert stanza_error(el) in ('service-unavailable', 'feature-not-implemented'), tostr(el)


def test_iq_result_to_server_gets_no_answer(server, raw):
    """An unsolicited result is dropped (never answered with an error)."""
    c = raw()
    c.login('alice', server.password('alice'), presence=False)
    c.send("<iq type='result' id='stray' to='%s'/>" % HOST)
    el = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST, iq_id='after-stray')
    assert el.get('id') == 'after-stray' and el.get('type') == 'result', tostr(el)
    assert not [e for e in c.received if e.get('id') == 'stray'], [tostr(e) for e in c.received]
