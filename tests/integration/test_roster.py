"""Roster items (RFC 6121 §2): get, add, rename and group, remove, the
pushes to every interested resource, versioning, and the errors for bad
sets.  Subscriptions are tested in test_presence.py; the items here are
contacts nobody subscribed to (subscription 'none')."""
import pytest

from parleytest import HOST, NS_CLIENT, RawClient, q, stanza_error, tostr, unique

NS_ROSTER = 'jabber:iq:roster'


def _items(result):
    query = result.find(q(NS_ROSTER, 'query'))
    assert query is not None, tostr(result)
    return {i.get('jid'): i for i in query.findall(q(NS_ROSTER, 'item'))}


def _is_push(e, jid):
    if e.tag != q(NS_CLIENT, 'iq') or e.get('type') != 'set':
        return False
    item = e.find('%s/%s' % (q(NS_ROSTER, 'query'), q(NS_ROSTER, 'item')))
    return item is not None and item.get('jid') == jid


@pytest.fixture
def two_resources(server):
    """alice twice, both having asked for the roster (interested resources)."""
    a1 = RawClient(server.port)
    a1.login('alice', server.password('alice'), resource=unique('r1-'))
    a2 = RawClient(server.port)
    a2.login('alice', server.password('alice'), resource=unique('r2-'))
    for c in (a1, a2):
        r = c.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
        assert r.get('type') == 'result', tostr(r)
    yield a1, a2
    a1.close()
    a2.close()


def test_add_rename_remove_with_pushes(server, two_resources):
    a1, a2 = two_resources
    contact = '%s@example.net' % unique('friend')
    r = a1.iq('set', "<query xmlns='%s'><item jid='%s' name='Friend'><group>Work</group></item></query>"
              % (NS_ROSTER, contact))
    assert r.get('type') == 'result', tostr(r)
    for c in (a1, a2):
        # The requesting resource gets its push before the result (so its
        # iq() call has read it already); the other one gets it now.
        early = [e for e in c.received if _is_push(e, contact)]
        push = early[0] if early else c.wait_for(lambda e: _is_push(e, contact), timeout=5,
                                                 what='roster push')
        item = push.find('%s/%s' % (q(NS_ROSTER, 'query'), q(NS_ROSTER, 'item')))
        assert item.get('name') == 'Friend'
        assert item.get('subscription') == 'none'
        assert [g.text for g in item.findall(q(NS_ROSTER, 'group'))] == ['Work']
        # Pushes come from the account itself (RFC 6121 §2.1.6).
        assert push.get('from') in (None, 'alice@%s' % HOST), tostr(push)

    items = _items(a2.iq('get', "<query xmlns='%s'/>" % NS_ROSTER))
    assert items[contact].get('name') == 'Friend'

    r = a2.iq('set', "<query xmlns='%s'><item jid='%s' name='Renamed'><group>A</group><group>B</group>"
              "</item></query>" % (NS_ROSTER, contact))
    assert r.get('type') == 'result', tostr(r)
    items = _items(a1.iq('get', "<query xmlns='%s'/>" % NS_ROSTER))
    assert items[contact].get('name') == 'Renamed'
    assert sorted(g.text for g in items[contact].findall(q(NS_ROSTER, 'group'))) == ['A', 'B']

    r = a1.iq('set', "<query xmlns='%s'><item jid='%s' subscription='remove'/></query>" % (NS_ROSTER, contact))
    assert r.get('type') == 'result', tostr(r)
    push = a2.wait_for(lambda e: _is_push(e, contact) and
                       e.find('%s/%s' % (q(NS_ROSTER, 'query'), q(NS_ROSTER, 'item'))).get('subscription') == 'remove',
                       timeout=5, what='removal push')
    assert push is not None
    assert contact not in _items(a1.iq('get', "<query xmlns='%s'/>" % NS_ROSTER))


def test_roster_persists_across_logins(server):
    contact = '%s@example.net' % unique('kept')
    with RawClient(server.port) as c:
        c.login('bob', server.password('bob'))
        r = c.iq('set', "<query xmlns='%s'><item jid='%s'/></query>" % (NS_ROSTER, contact))
        assert r.get('type') == 'result', tostr(r)
    with RawClient(server.port) as c:
        c.login('bob', server.password('bob'))
        assert contact in _items(c.iq('get', "<query xmlns='%s'/>" % NS_ROSTER))


def test_versioning(server):
    with RawClient(server.port) as c:
        c.login('carol', server.password('carol'))
        first = c.iq('get', "<query xmlns='%s' ver=''/>" % NS_ROSTER)
        ver = first.find(q(NS_ROSTER, 'query')).get('ver')
        assert ver is not None, 'no ver on a versioned roster result: %s' % tostr(first)
        # Unchanged: an empty result (RFC 6121 §2.6.3).
        same = c.iq('get', "<query xmlns='%s' ver='%s'/>" % (NS_ROSTER, ver))
        assert same.get('type') == 'result' and same.find(q(NS_ROSTER, 'query')) is None, tostr(same)
        c.iq('set', "<query xmlns='%s'><item jid='%s@example.net'/></query>" % (NS_ROSTER, unique('v')))
        changed = c.iq('get', "<query xmlns='%s' ver='%s'/>" % (NS_ROSTER, ver))
        query = changed.find(q(NS_ROSTER, 'query'))
        assert query is not None and query.get('ver') != ver, tostr(changed)


@pytest.mark.parametrize('payload, condition', [
    ("<item jid='x@example.net'/><item jid='y@example.net'/>", 'bad-request'),
    ("<item jid='z@example.net' name='%s'/>" % ('n' * 2000), 'not-acceptable'),
    ("<item jid='not a jid@@'/>", None),
])
def test_bad_sets(server, payload, condition):
    with RawClient(server.port) as c:
        c.login('erin', server.password('erin'))
        r = c.iq('set', "<query xmlns='%s'>%s</query>" % (NS_ROSTER, payload))
        assert r.get('type') == 'error', tostr(r)
        if condition is not None:
            assert stanza_error(r) == condition, tostr(r)


def test_someone_elses_roster_is_forbidden(server):
    with RawClient(server.port) as c:
        c.login('erin', server.password('erin'))
        r = c.iq('get', "<query xmlns='%s'/>" % NS_ROSTER, to='alice@%s' % HOST)
        assert r.get('type') == 'error', tostr(r)
        assert stanza_error(r) in ('forbidden', 'service-unavailable', 'not-allowed'), tostr(r)
