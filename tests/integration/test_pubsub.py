"""Publish-subscribe (XEP-0060) on the service pubsub.test.local: discovery,
node creation (instant, named, with a configuration form), configuration,
deletion and purge with their notifications, publishing with and without
ItemIDs, retraction, item retrieval (all, by id, max_items, RSM paging),
subscriptions and their options (also given with the subscribe),
notifications with and without payloads, the last item with <delay/> on
subscription, the five access models, subscriptions ending when their
entity loses access, the owner's management of affiliations (one entry
per entity, an owner kept) and subscriptions, publish-options
preconditions, max_items, who may create nodes, and bad input (a 10 MB
item, too many nodes, malformed forms, nodes that do not exist).

The cases speak the protocol with RawClient so the stanzas can be checked
exactly; one walks through a node with slixmpp's xep_0060, xep_0004 and
xep_0059 plugins, as a client would.  The section numbers in the
docstrings are those of XEP-0060.  The helpers here are used by
test_pep.py too."""
import asyncio

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, OTHER, q, stanza_error, tostr, unique
from test_muc import (NS_RSM, NS_XDATA, connect, delay_of, disco_info, disco_items, drain, features, field_xml,
                      fresh_user, identities, iq, item_jids, nothing, sync, take, values)

SERVICE = 'pubsub.' + HOST

NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_OWNER = NS_PUBSUB + '#owner'
NS_EVENT = NS_PUBSUB + '#event'
NS_ERRORS = NS_PUBSUB + '#errors'
NS_NODE_CONFIG = NS_PUBSUB + '#node_config'
NS_SUB_OPTIONS = NS_PUBSUB + '#subscribe_options'
NS_SUB_AUTH = NS_PUBSUB + '#subscribe_authorization'
NS_PUBLISH_OPTIONS = NS_PUBSUB + '#publish-options'
NS_ROSTER = 'jabber:iq:roster'
NS_TEST = 'urn:example:parley-test'

# What a service advertises for what it implements (§10, "If supported,
# MUST be advertised"); Parley's service implements all of these.
SERVICE_FEATURES = [NS_PUBSUB] + [NS_PUBSUB + '#' + f for f in (
    'access-authorize', 'access-open', 'access-presence', 'access-roster', 'access-whitelist',
    'config-node', 'create-and-configure', 'create-nodes', 'delete-items', 'delete-nodes',
    'instant-nodes', 'item-ids', 'last-published', 'manage-subscriptions', 'modify-affiliations',
    'outcast-affiliation', 'persistent-items', 'publish', 'publish-options', 'publisher-affiliation',
    'purge-nodes', 'retract-items', 'retrieve-affiliations', 'retrieve-items',
    'retrieve-subscriptions', 'subscribe', 'subscription-options')]


# ---- requests ----------------------------------------------------------------------

def ps(c, typ, payload, to=SERVICE, owner=False):
    """An iq with <pubsub/> (or <pubsub xmlns='...#owner'/>) around payload."""
    return iq(c, typ, to, "<pubsub xmlns='%s'>%s</pubsub>" % (NS_OWNER if owner else NS_PUBSUB, payload))


def ok(r, what='request'):
    assert r.get('type') == 'result', '%s failed: %s' % (what, tostr(r))
    return r


def ps_error(r):
    """(defined condition, the pubsub#errors condition or None) of an error answer."""
    assert r.get('type') == 'error', 'expected an error, got %s' % tostr(r)
    err = r.find(q(NS_CLIENT, 'error'))
    app = None
    if err is not None:
        for child in err:
            if child.tag.startswith('{%s}' % NS_ERRORS):
                app = child.tag.rsplit('}', 1)[1]
    return stanza_error(r), app


def assert_error(r, cond, app=None, what='request'):
    got = ps_error(r)
    if isinstance(cond, str):
        cond = (cond,)
    assert got[0] in cond, '%s: expected <%s/>, got %s' % (what, '/'.join(cond), tostr(r))
    if app is not None:
        assert got[1] == app, '%s: expected <%s xmlns=%s/>, got %s' % (what, app, NS_ERRORS, tostr(r))


def form(fields, form_type=NS_NODE_CONFIG, typ='submit'):
    out = "<x xmlns='%s' type='%s'>" % (NS_XDATA, typ)
    if form_type is not None:
        out += "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % form_type
    for var, value in fields.items():
        out += field_xml(var, value)
    return out + '</x>'


def create(c, node=None, config=None, to=SERVICE, expect_ok=True):
    """Create node (None: an instant node, §8.1.2) with an optional
    configuration (§8.1.3); returns the node's name (or the answer when
    expect_ok is false)."""
    n = " node='%s'" % node if node else ''
    conf = '<configure>%s</configure>' % form(config) if config is not None else ''
    r = ps(c, 'set', '<create%s/>%s' % (n, conf), to=to)
    if not expect_ok:
        return r
    ok(r, 'create %s' % node)
    made = r.find('%s/%s' % (q(NS_PUBSUB, 'pubsub'), q(NS_PUBSUB, 'create')))
    if node is None:
        assert made is not None and made.get('node'), 'instant node without a name: %s' % tostr(r)
        return made.get('node')
    if made is not None and made.get('node'):
        return made.get('node')
    return node


def new_node(c, config=None, prefix='node', to=SERVICE):
    return create(c, unique(prefix), config, to=to)


def payload(text, ns=NS_TEST):
    return "<entry xmlns='%s'><title>%s</title></entry>" % (ns, text)


def publish(c, node, body, item_id=None, options=None, to=SERVICE):
    """Publish (§7.1); returns the answer."""
    i = " id='%s'" % item_id if item_id is not None else ''
    opts = '<publish-options>%s</publish-options>' % form(options, NS_PUBLISH_OPTIONS) if options else ''
    return ps(c, 'set', "<publish node='%s'><item%s>%s</item></publish>%s" % (node, i, body, opts), to=to)


def published(c, node, body, item_id=None, options=None, to=SERVICE):
    """Publish; returns the item's id (the service's when item_id is None, §7.1.2)."""
    r = ok(publish(c, node, body, item_id, options, to), 'publish to %s' % node)
    item = r.find('%s/%s/%s' % (q(NS_PUBSUB, 'pubsub'), q(NS_PUBSUB, 'publish'), q(NS_PUBSUB, 'item')))
    if item_id is None:
        assert item is not None and item.get('id'), 'no ItemID in the publish result: %s' % tostr(r)
        return item.get('id')
    if item is not None and item.get('id'):
        assert item.get('id') == item_id, tostr(r)
    return item_id


def get_items(c, node, max_items=None, ids=(), rsm='', to=SERVICE):
    m = " max_items='%d'" % max_items if max_items is not None else ''
    inner = ''.join("<item id='%s'/>" % i for i in ids)
    return ps(c, 'get', "<items node='%s'%s>%s</items>%s" % (node, m, inner, rsm), to=to)


def items_of(r):
    """[(id, payload element or None)] of an items result."""
    out = []
    items = r.find('%s/%s' % (q(NS_PUBSUB, 'pubsub'), q(NS_PUBSUB, 'items')))
    assert items is not None, 'no <items/> in %s' % tostr(r)
    for it in items.findall(q(NS_PUBSUB, 'item')):
        kids = list(it)
        out.append((it.get('id'), kids[0] if kids else None))
    return out


def ids_of(r):
    return [i for i, _ in items_of(r)]


def titles(r):
    return [p.findtext(q(NS_TEST, 'title')) if p is not None else None for _, p in items_of(r)]


def subscribe(c, node, jid=None, to=SERVICE, options=None):
    jid = jid or parleytest_bare(c)
    opts = '<options>%s</options>' % form(options, NS_SUB_OPTIONS) if options else ''
    return ps(c, 'set', "<subscribe node='%s' jid='%s'/>%s" % (node, jid, opts), to=to)


def subscription_of(r):
    s = r.find('%s/%s' % (q(NS_PUBSUB, 'pubsub'), q(NS_PUBSUB, 'subscription')))
    assert s is not None, 'no <subscription/> in %s' % tostr(r)
    return s


def subscribed(c, node, to=SERVICE):
    s = subscription_of(ok(subscribe(c, node, to=to), 'subscribe to %s' % node))
    assert s.get('subscription') == 'subscribed', tostr(s)
    return s


def unsubscribe(c, node, jid=None, to=SERVICE):
    return ps(c, 'set', "<unsubscribe node='%s' jid='%s'/>" % (node, jid or parleytest_bare(c)), to=to)


def parleytest_bare(c):
    return c.jid.split('/', 1)[0]


def configure_get(c, node, to=SERVICE):
    """The node's configuration form (§8.2.1): var -> [values]."""
    r = ok(ps(c, 'get', "<configure node='%s'/>" % node, to=to, owner=True), 'configure get')
    x = r.find('%s/%s/%s' % (q(NS_OWNER, 'pubsub'), q(NS_OWNER, 'configure'), q(NS_XDATA, 'x')))
    assert x is not None and x.get('type') == 'form', tostr(r)
    return {f.get('var'): values(f) for f in x.findall(q(NS_XDATA, 'field'))}


def configure(c, node, fields, to=SERVICE):
    return ps(c, 'set', "<configure node='%s'>%s</configure>" % (node, form(fields)), to=to, owner=True)


def owner_set(c, node, what, entries, to=SERVICE):
    """Set affiliations or subscriptions (§8.9.2, §8.8.2): entries is [(jid, value)]."""
    attr = 'affiliation' if what == 'affiliations' else 'subscription'
    inner = ''.join("<%s jid='%s' %s='%s'/>" % (attr, j, attr, v) for j, v in entries)
    return ps(c, 'set', "<%s node='%s'>%s</%s>" % (what, node, inner, what), to=to, owner=True)


def owner_list(c, node, what, to=SERVICE):
    """{jid: value} of the node's affiliations or subscriptions (§8.9.1, §8.8.1)."""
    attr = 'affiliation' if what == 'affiliations' else 'subscription'
    r = ok(ps(c, 'get', "<%s node='%s'/>" % (what, node), to=to, owner=True), 'get %s' % what)
    lst = r.find('%s/%s' % (q(NS_OWNER, 'pubsub'), q(NS_OWNER, what)))
    assert lst is not None, tostr(r)
    return {e.get('jid'): e.get(attr) for e in lst.findall(q(NS_OWNER, attr))}


# ---- notifications -------------------------------------------------------------

def event_of(e, frm=SERVICE):
    """The <event/> of a notification message from frm, or None."""
    if e.tag != q(NS_CLIENT, 'message') or (frm is not None and e.get('from') != frm):
        return None
    return e.find(q(NS_EVENT, 'event'))


def is_event(kind, node, frm=SERVICE, item_id=None):
    """A predicate: a notification whose <event/> holds <kind node=node/>
    (kind: items, delete, purge, subscription, configuration), and for items an
    <item/> or <retract/> with item_id when given."""
    def pred(e):
        ev = event_of(e, frm)
        if ev is None:
            return False
        el = ev.find(q(NS_EVENT, kind))
        if el is None or el.get('node') != node:
            return False
        if item_id is None:
            return True
        return any(x.get('id') == item_id for x in el)
    return pred


def event_items(e):
    """[(tag local name, id, payload or None)] of an items notification."""
    el = e.find('%s/%s' % (q(NS_EVENT, 'event'), q(NS_EVENT, 'items')))
    out = []
    for x in el:
        kids = list(x)
        out.append((x.tag.rsplit('}', 1)[1], x.get('id'), kids[0] if kids else None))
    return out


def notified(c, node, item_id=None, frm=SERVICE, timeout=5.0):
    return take(c, is_event('items', node, frm, item_id), timeout, 'notification of %s/%s' % (node, item_id))


def not_notified(c, node, item_id=None, frm=SERVICE):
    """c got no notification of node (item_id) that was sent before now: a
    notification goes out before its publisher's answer, and whatever the
    server sent c before it answers c's ping is read by then."""
    sync(c)
    nothing(c, is_event('items', node, frm, item_id), 0, 'notification of %s/%s' % (node, item_id))


def subscription_event(c, node, frm=SERVICE):
    """The <subscription/> of the next subscription state notification of
    node (§8.8.4, §12) to c."""
    e = take(c, is_event('subscription', node, frm), 5, 'subscription notification of %s' % node)
    return e.find('%s/%s' % (q(NS_EVENT, 'event'), q(NS_EVENT, 'subscription')))


# ---- fixtures --------------------------------------------------------------------

class PubsubParleyd(parleytest.Parleyd):
    """A parleyd whose HOST has pubsub options of the test's own (a YAML
    flow map) and, optionally, a larger stanza size limit."""

    def __init__(self, workdir, pubsub='{}', max_stanza=None, **kw):
        self.pubsub = pubsub
        self.max_stanza = max_stanza
        super().__init__(workdir, **kw)

    def _host_muc(self):
        return super()._host_muc() + '      pubsub: %s\n' % self.pubsub

    def write_config(self):
        super().write_config()
        if self.max_stanza:
            text = self.config.read_text()
            self.config.write_text(text.replace('  max_stanza_size: 64K\n', '  max_stanza_size: %s\n  max_output: 64M\n'
                                                % self.max_stanza))


LIMITS = ('{ access_create: list, create_list: [bob@%s], max_nodes_per_user: 5, max_items_per_node: 20 }'
          % HOST)


@pytest.fixture(scope='module')
def limited(tmp_path_factory):
    """A parleyd whose pubsub.test.local lets only bob create nodes, at most
    5 each, with at most 20 items a node; pubsub.other.local lets only the
    admins of other.local (there are none) create nodes; stanzas up to 12M
    reach the pubsub module (its max_item_size stays 256K)."""
    srv = PubsubParleyd(tmp_path_factory.mktemp('pubsub-limits'), pubsub=LIMITS, max_stanza='12M',
                        other_modules='{ pubsub: { access_create: admins } }')
    srv.start_with_users()
    yield srv
    srv.finish()


@pytest.fixture
def clients(server):
    made = []

    def make(user='alice', **kw):
        c = connect(server, user, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def roster_friends(srv, owner, contact, group=None):
    """contact subscribes to owner's presence and owner approves: owner's
    roster has contact with subscription 'from' (in group when given)."""
    o = connect(srv, owner)
    k = connect(srv, contact)
    try:
        if group:
            _roster_set(o, '%s@%s' % (contact, HOST), group)
        k.send("<presence to='%s@%s' type='subscribe'/>" % (owner, HOST))
        take(o, lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe', 5,
             'subscription request')
        o.send("<presence to='%s@%s' type='subscribed'/>" % (contact, HOST))
        take(k, lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribed', 5,
             'subscription approval')
        sync(o)
        sync(k)
    finally:
        o.close()
        k.close()


def _roster_set(c, jid, group):
    rid = unique('roster')
    c.send("<iq type='set' id='%s'><query xmlns='%s'><item jid='%s'><group>%s</group></item></query></iq>"
           % (rid, NS_ROSTER, jid, group))
    return take(c, lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == rid, 5, 'roster set answer')


# ---- discovery -------------------------------------------------------------------

def test_service_listed_in_host_items(server, clients):
    """The service is an item of its host (XEP-0030), so clients find it."""
    c = clients('alice')
    assert SERVICE in item_jids(disco_items(c, HOST))


def test_service_info(server, clients):
    """§5.1: identity pubsub/service and the features of what it implements."""
    c = clients('bob')
    info = disco_info(c, SERVICE)
    assert info.get('type') == 'result', tostr(info)
    assert ('pubsub', 'service') in [(cat, typ) for cat, typ, _ in identities(info)], tostr(info)
    missing = [f for f in SERVICE_FEATURES if f not in features(info)]
    assert not missing, 'features not advertised: %s' % missing


def test_nodes_in_disco(server, clients):
    """§5.2, §5.3: a node is an item of the service and has identity pubsub/leaf."""
    c = clients('alice')
    node = new_node(c, {'pubsub#title': 'A node to discover'})
    items = disco_items(c, SERVICE)
    found = [i for i in items.iter('{http://jabber.org/protocol/disco#items}item') if i.get('node') == node]
    assert found and found[0].get('jid') == SERVICE, tostr(items)
    info = disco_info(c, SERVICE, node)
    assert info.get('type') == 'result', tostr(info)
    assert ('pubsub', 'leaf') in [(cat, typ) for cat, typ, _ in identities(info)], tostr(info)
    assert_error(disco_info(c, SERVICE, unique('nosuch')), 'item-not-found')


# ---- create, configure, delete, purge -------------------------------------------

def test_create_instant_and_named(server, clients):
    """§8.1.2 instant node (the service names it), §8.1.1 named node; a
    second create of the same name is a <conflict/> (§8.1.1 error cases)."""
    c = clients('alice')
    instant = create(c)
    ok(get_items(c, instant))
    named = unique('named')
    assert create(c, named) == named
    assert_error(create(c, named, expect_ok=False), 'conflict')
    other = clients('bob')
    assert_error(create(other, named, expect_ok=False), 'conflict')


def test_create_with_config_and_configure(server, clients):
    """§8.1.3 create-and-configure; §8.2.1 the owner reads the form back,
    §8.2.4 changes it; a non-owner may not read it (<forbidden/>)."""
    c = clients('alice')
    node = new_node(c, {'pubsub#title': 'first title', 'pubsub#max_items': '7',
                        'pubsub#access_model': 'whitelist'})
    conf = configure_get(c, node)
    assert conf.get('FORM_TYPE') == [NS_NODE_CONFIG], conf
    assert conf.get('pubsub#title') == ['first title'], conf
    assert conf.get('pubsub#max_items') == ['7'], conf
    assert conf.get('pubsub#access_model') == ['whitelist'], conf
    ok(configure(c, node, {'pubsub#title': 'second title', 'pubsub#access_model': 'open'}), 'configure')
    conf = configure_get(c, node)
    assert conf.get('pubsub#title') == ['second title'], conf
    assert conf.get('pubsub#access_model') == ['open'], conf
    assert conf.get('pubsub#max_items') == ['7'], 'a field not submitted changed: %s' % conf
    bob = clients('bob')
    assert_error(ps(bob, 'get', "<configure node='%s'/>" % node, owner=True), 'forbidden')
    assert_error(configure(bob, node, {'pubsub#title': 'hijacked'}), 'forbidden')
    assert configure_get(c, node).get('pubsub#title') == ['second title']


def test_default_configuration(server, clients):
    """§8.3: the default configuration of new nodes, as a form; the service
    advertises last-published, so pubsub#send_last_published_item defaults
    to on_sub_and_presence (§4.3)."""
    c = clients('bob')
    r = ok(ps(c, 'get', '<default/>', owner=True), 'default configuration')
    x = r.find('%s/%s/%s' % (q(NS_OWNER, 'pubsub'), q(NS_OWNER, 'default'), q(NS_XDATA, 'x')))
    assert x is not None, tostr(r)
    fields = {f.get('var'): values(f) for f in x.findall(q(NS_XDATA, 'field'))}
    assert fields.get('FORM_TYPE') == [NS_NODE_CONFIG], fields
    assert fields.get('pubsub#max_items') == ['10'], 'default_max_items is 10: %s' % fields
    if NS_PUBSUB + '#last-published' in features(disco_info(c, SERVICE)):
        assert fields.get('pubsub#send_last_published_item') == ['on_sub_and_presence'], fields


def test_delete_notifies_subscribers(server, clients):
    """§8.4: the owner deletes a node; its subscribers get <delete/>; the
    node is gone.  A non-owner may not delete (<forbidden/>)."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice)
    subscribed(bob, node)
    assert_error(ps(bob, 'set', "<delete node='%s'/>" % node, owner=True), 'forbidden')
    ok(ps(alice, 'set', "<delete node='%s'/>" % node, owner=True), 'delete')
    take(bob, is_event('delete', node), 5, 'delete notification')
    assert_error(get_items(alice, node), 'item-not-found')
    assert_error(ps(alice, 'set', "<delete node='%s'/>" % node, owner=True), 'item-not-found')


def test_purge(server, clients):
    """§8.5: the owner purges every item; a subscriber is told with
    <purge/> (the node notifies retractions)."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#notify_retract': '1', 'pubsub#max_items': '10'})
    subscribed(bob, node)
    for i in range(3):
        published(alice, node, payload('p%d' % i), 'i%d' % i)
    drain(bob, 0.5)
    assert_error(ps(bob, 'set', "<purge node='%s'/>" % node, owner=True), 'forbidden')
    ok(ps(alice, 'set', "<purge node='%s'/>" % node, owner=True), 'purge')
    take(bob, is_event('purge', node), 5, 'purge notification')
    assert items_of(ok(get_items(alice, node))) == []


# ---- publish, retract, items ------------------------------------------------------

def test_publish_with_and_without_id(server, clients):
    """§7.1.2: a publish without ItemID gets one from the service (in the
    result); with an ItemID the same id overwrites the item."""
    c = clients('alice')
    node = new_node(c, {'pubsub#max_items': '10'})
    generated = published(c, node, payload('no id'))
    published(c, node, payload('with id'), 'fixed')
    published(c, node, payload('with id, again'), 'fixed')
    another = published(c, node, payload('no id 2'))
    assert generated != another
    got = dict((i, p.findtext(q(NS_TEST, 'title'))) for i, p in items_of(ok(get_items(c, node))))
    assert got == {generated: 'no id', 'fixed': 'with id, again', another: 'no id 2'}, got


def test_retract_with_notify(server, clients):
    """§7.2: retract with notify='true' sends <retract id=.../> to the
    subscribers; the item is gone; retracting it again is item-not-found."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#max_items': '10'})
    published(alice, node, payload('keep'), 'keep')
    published(alice, node, payload('drop'), 'drop')
    subscribed(bob, node)
    drain(bob, 0.3)
    assert_error(ps(bob, 'set', "<retract node='%s'><item id='drop'/></retract>" % node), 'forbidden')
    ok(ps(alice, 'set', "<retract node='%s' notify='true'><item id='drop'/></retract>" % node), 'retract')
    e = take(bob, is_event('items', node, item_id='drop'), 5, 'retract notification')
    assert [(k, i) for k, i, _ in event_items(e)] == [('retract', 'drop')], tostr(e)
    assert ids_of(ok(get_items(alice, node))) == ['keep']
    assert_error(ps(alice, 'set', "<retract node='%s'><item id='drop'/></retract>" % node), 'item-not-found')


def test_items_all_by_id_and_max(server, clients):
    """§6.5.2 all items, §6.5.8 by ItemID, §6.5.7 max_items: the most
    recent ones."""
    c = clients('alice')
    node = new_node(c, {'pubsub#max_items': '10', 'pubsub#access_model': 'open'})
    for i in range(5):
        published(c, node, payload('t%d' % i), 'i%d' % i)
    bob = clients('bob')
    assert sorted(ids_of(ok(get_items(bob, node)))) == ['i0', 'i1', 'i2', 'i3', 'i4']
    r = ok(get_items(bob, node, ids=['i3']))
    assert ids_of(r) == ['i3'] and titles(r) == ['t3'], tostr(r)
    r = ok(get_items(bob, node, ids=['i1', 'i4']))
    assert sorted(ids_of(r)) == ['i1', 'i4'], tostr(r)
    r = ok(get_items(bob, node, max_items=2))
    assert sorted(ids_of(r)) == ['i3', 'i4'], 'max_items=2 must give the two newest: %s' % tostr(r)
    r = get_items(bob, node, ids=['nosuch'])
    assert r.get('type') == 'error' or ids_of(r) == [], tostr(r)


def test_items_rsm_paging(server, clients):
    """§6.5.4: items in pages of XEP-0059 result set management; the
    pages together hold every item once, and <count/> says how many."""
    c = clients('alice')
    node = new_node(c, {'pubsub#max_items': '10'})
    want = ['r%d' % i for i in range(7)]
    for i in want:
        published(c, node, payload(i), i)
    seen = []
    after = ''
    for _ in range(10):
        r = ok(get_items(c, node, rsm="<set xmlns='%s'><max>3</max>%s</set>" % (NS_RSM, after)), 'page')
        page = ids_of(r)
        assert len(page) <= 3, tostr(r)
        s = r.find('%s/%s' % (q(NS_PUBSUB, 'pubsub'), q(NS_RSM, 'set')))
        assert s is not None, 'no RSM <set/> in the answer: %s' % tostr(r)
        if s.findtext(q(NS_RSM, 'count')) is not None:
            assert int(s.findtext(q(NS_RSM, 'count'))) == len(want), tostr(s)
        seen += page
        last = s.findtext(q(NS_RSM, 'last'))
        if not page or len(seen) >= len(want):
            break
        assert last, tostr(s)
        after = '<after>%s</after>' % last
    assert sorted(seen) == sorted(want), 'paging gave %s' % seen


def test_slixmpp_walkthrough(server, run):
    """A client's view with slixmpp's plugins: create with an xep_0004 form,
    publish, receive the pubsub_publish event, page the items with xep_0059."""
    from slixmpp.plugins.xep_0059 import stanza as rsm_stanza
    from slixmpp.plugins.xep_0060 import stanza as ps_stanza
    from slixmpp.xmlstream import ET as SET, register_stanza_plugin

    async def go():
        alice = await parleytest.login(server, 'alice', resource=unique('sx-'))
        bob = await parleytest.login(server, 'bob', resource=unique('sx-'))
        try:
            for c in (alice, bob):
                for p in ('xep_0004', 'xep_0030', 'xep_0059', 'xep_0060'):
                    c.register_plugin(p)
            register_stanza_plugin(ps_stanza.Pubsub, rsm_stanza.Set)
            events = asyncio.Queue()
            bob.add_event_handler('pubsub_publish', events.put_nowait)
            node = unique('slix')
            f = alice['xep_0004'].make_form('submit')
            f.add_field(var='FORM_TYPE', ftype='hidden', value=NS_NODE_CONFIG)
            f.add_field(var='pubsub#max_items', value='10')
            f.add_field(var='pubsub#access_model', value='open')
            await alice['xep_0060'].create_node(SERVICE, node, config=f)
            await bob['xep_0060'].subscribe(SERVICE, node)
            for i in range(5):
                el = SET.fromstring(payload('slix %d' % i))
                await alice['xep_0060'].publish(SERVICE, node, id='s%d' % i, payload=el)
            got = []
            while len(got) < 5:
                msg = await asyncio.wait_for(events.get(), 5)
                got.append(msg['pubsub_event']['items']['item']['id'])
            assert got == ['s0', 's1', 's2', 's3', 's4'], got
            iq = bob.Iq(sto=SERVICE, stype='get')
            iq['pubsub']['items']['node'] = node
            pages = []
            async for page in bob['xep_0059'].iterate(iq, 'pubsub', amount=2):
                pages.append([it['id'] for it in page['pubsub']['items']])
                if len(pages) > 5:
                    break
            flat = [i for p in pages for i in p]
            assert sorted(flat) == ['s0', 's1', 's2', 's3', 's4'] and all(len(p) <= 2 for p in pages), pages
            await alice['xep_0060'].delete_node(SERVICE, node)
        finally:
            await parleytest.logout(alice, bob)
    run(go(), timeout=60)


# ---- subscriptions and notifications -------------------------------------------

def test_subscribe_unsubscribe(server, clients):
    """§6.1 subscribe (the answer names the subscription), notifications
    follow; §6.2 unsubscribe stops them; unsubscribing again is an error
    (<unexpected-request/> with <not-subscribed/>, §6.2.3.2)."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#max_items': '10'})
    s = subscribed(bob, node)
    assert s.get('node') in (node, None) and s.get('jid', '').split('/')[0] == 'bob@' + HOST, tostr(s)
    sid = published(alice, node, payload('hello subscribers'))
    e = notified(bob, node, sid)
    kind, iid, p = event_items(e)[0]
    assert (kind, iid) == ('item', sid) and p.findtext(q(NS_TEST, 'title')) == 'hello subscribers', tostr(e)
    ok(unsubscribe(bob, node), 'unsubscribe')
    published(alice, node, payload('after unsubscribe'), 'late')
    nothing(bob, is_event('items', node), 1.0, 'notification after unsubscribing')
    assert_error(unsubscribe(bob, node), 'unexpected-request', 'not-subscribed')
    # another's subscription cannot be made (§6.1.3.1: <bad-request/> with
    # <invalid-jid/>) nor ended (§6.2.3.3: <forbidden/>)
    assert_error(subscribe(bob, node, jid='carol@' + HOST), 'bad-request', 'invalid-jid')
    carol = connect(server, 'carol')
    try:
        subscribed(carol, node)
        assert_error(unsubscribe(bob, node, jid='carol@' + HOST), 'forbidden')
    finally:
        carol.close()


def test_subscription_options(server, clients):
    """§6.3: the subscriber reads its options form and sets
    pubsub#deliver=false; no notification is delivered then."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#max_items': '10'})
    subscribed(bob, node)
    bj = parleytest_bare(bob)
    r = ok(ps(bob, 'get', "<options node='%s' jid='%s'/>" % (node, bj)), 'options get')
    x = r.find('%s/%s/%s' % (q(NS_PUBSUB, 'pubsub'), q(NS_PUBSUB, 'options'), q(NS_XDATA, 'x')))
    assert x is not None, tostr(r)
    fields = {f.get('var'): values(f) for f in x.findall(q(NS_XDATA, 'field'))}
    assert fields.get('FORM_TYPE') == [NS_SUB_OPTIONS] and 'pubsub#deliver' in fields, fields
    ok(ps(bob, 'set', "<options node='%s' jid='%s'>%s</options>"
          % (node, bj, form({'pubsub#deliver': '0'}, NS_SUB_OPTIONS))), 'options set')
    published(alice, node, payload('not delivered'), 'quiet')
    nothing(bob, is_event('items', node), 1.0, 'notification with pubsub#deliver false')
    ok(ps(bob, 'set', "<options node='%s' jid='%s'>%s</options>"
          % (node, bj, form({'pubsub#deliver': '1'}, NS_SUB_OPTIONS))), 'options set')
    published(alice, node, payload('delivered'), 'loud')
    notified(bob, node, 'loud')
    # someone else's options are not theirs to read (§6.3.4.2: <forbidden/>)
    carol = clients('carol')
    assert_error(ps(carol, 'get', "<options node='%s' jid='%s'/>" % (node, bj)), 'forbidden')


def test_subscribe_and_configure(server, clients):
    """§6.3.7: options sent with the subscribe, in the same request, hold
    for the new subscription (pubsub#deliver false: no notification); bad
    options are <bad-request/> with <invalid-options/> and options that
    name a node or jid are <bad-request/>, and neither subscribes."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#max_items': '10'})
    bj = parleytest_bare(bob)
    assert_error(subscribe(bob, node, options={'pubsub#deliver': 'perhaps'}), 'bad-request', 'invalid-options')
    r = ps(bob, 'set', "<subscribe node='%s' jid='%s'/><options node='%s' jid='%s'>%s</options>"
           % (node, bj, node, bj, form({'pubsub#deliver': '0'}, NS_SUB_OPTIONS)))
    assert_error(r, 'bad-request')
    assert owner_list(alice, node, 'subscriptions') == {}
    s = subscription_of(ok(subscribe(bob, node, options={'pubsub#deliver': '0'}), 'subscribe with options'))
    assert s.get('subscription') == 'subscribed', tostr(s)
    r = ok(ps(bob, 'get', "<options node='%s' jid='%s'/>" % (node, bj)), 'options get')
    assert [values(f) for f in r.iter(q(NS_XDATA, 'field')) if f.get('var') == 'pubsub#deliver'] == [['0']], tostr(r)
    published(alice, node, payload('not delivered'), 'q1')
    not_notified(bob, node, 'q1')


def test_notifications_without_payloads(server, clients):
    """§4.3: with pubsub#deliver_payloads false, a notification names the
    item and carries no payload; with true it carries it."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#deliver_payloads': '0', 'pubsub#max_items': '10'})
    subscribed(bob, node)
    published(alice, node, payload('secret payload'), 'light')
    e = notified(bob, node, 'light')
    assert [(k, i, p) for k, i, p in event_items(e)] == [('item', 'light', None)], tostr(e)
    assert 'secret payload' not in tostr(e)
    ok(configure(alice, node, {'pubsub#deliver_payloads': '1'}), 'configure')
    published(alice, node, payload('full payload'), 'full')
    e = notified(bob, node, 'full')
    assert event_items(e)[0][2] is not None and 'full payload' in tostr(e), tostr(e)


def test_last_item_with_delay_on_subscribe(server, clients):
    """§6.1.7 / §12.10: with send_last_published_item on_sub, a new
    subscriber gets the last item, stamped with <delay/> (XEP-0203)."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#send_last_published_item': 'on_sub', 'pubsub#max_items': '10'})
    published(alice, node, payload('older'), 'old')
    published(alice, node, payload('the last one'), 'last')
    subscribed(bob, node)
    e = notified(bob, node)
    assert [i for _, i, _ in event_items(e)] == ['last'], tostr(e)
    d = delay_of(e)
    assert d is not None and d.get('stamp'), 'the last item has no <delay/>: %s' % tostr(e)
    nothing(bob, is_event('items', node, item_id='old'), 0.5, 'older item')


# ---- access models ---------------------------------------------------------------

def test_access_open(server, clients):
    """§4.5 open: anyone, also a user of another host, subscribes and retrieves."""
    alice = clients('alice')
    node = new_node(alice, {'pubsub#access_model': 'open', 'pubsub#max_items': '10'})
    published(alice, node, payload('public'), 'pub')
    dave = clients('dave', host=OTHER)
    assert ids_of(ok(get_items(dave, node))) == ['pub']
    subscribed(dave, node)
    published(alice, node, payload('public 2'), 'pub2')
    notified(dave, node, 'pub2')


def test_access_presence(server, clients):
    """§4.5 presence: only entities subscribed to the owner's presence;
    others get <not-authorized/> with <presence-subscription-required/>
    (§6.1.3.2, §6.5.9.4)."""
    owner, friend, stranger = fresh_user(server, 'po'), fresh_user(server, 'pf'), fresh_user(server, 'ps')
    roster_friends(server, owner, friend)
    o, f, s = clients(owner), clients(friend), clients(stranger)
    node = new_node(o, {'pubsub#access_model': 'presence', 'pubsub#max_items': '10'})
    published(o, node, payload('for friends'), 'f1')
    assert_error(subscribe(s, node), 'not-authorized', 'presence-subscription-required')
    assert_error(get_items(s, node), 'not-authorized', 'presence-subscription-required')
    assert ids_of(ok(get_items(f, node))) == ['f1']
    subscribed(f, node)


def test_access_roster(server, clients):
    """§4.5 roster: only contacts in the allowed roster groups; another
    contact gets <not-authorized/> with <not-in-roster-group/> (§6.1.3.3)."""
    owner, inner, outer = fresh_user(server, 'ro'), fresh_user(server, 'ri'), fresh_user(server, 'rx')
    roster_friends(server, owner, inner, group='inner circle')
    roster_friends(server, owner, outer, group='others')
    o, i, x = clients(owner), clients(inner), clients(outer)
    node = new_node(o, {'pubsub#access_model': 'roster', 'pubsub#roster_groups_allowed': 'inner circle',
                        'pubsub#max_items': '10'})
    published(o, node, payload('inner only'), 'in1')
    assert ids_of(ok(get_items(i, node))) == ['in1']
    subscribed(i, node)
    assert_error(subscribe(x, node), 'not-authorized', 'not-in-roster-group')
    assert_error(get_items(x, node), 'not-authorized', 'not-in-roster-group')


def test_access_whitelist(server, clients):
    """§4.5 whitelist: others get <not-allowed/> with <closed-node/>
    (§6.1.3.4); once the owner makes them members they may subscribe."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#access_model': 'whitelist', 'pubsub#max_items': '10'})
    published(alice, node, payload('members only'), 'm1')
    assert_error(subscribe(bob, node), 'not-allowed', 'closed-node')
    assert_error(get_items(bob, node), 'not-allowed', 'closed-node')
    ok(owner_set(alice, node, 'affiliations', [('bob@' + HOST, 'member')]), 'make bob a member')
    assert ids_of(ok(get_items(bob, node))) == ['m1']
    subscribed(bob, node)


def test_access_authorize(server, clients):
    """§4.5 authorize, §6.1.4 / §8.6: the subscription is pending (a second
    subscribe meanwhile is <not-authorized/> with <pending-subscription/>,
    §6.1.3.7), the owner gets the subscribe_authorization form, approves
    it, and the subscriber is told it is subscribed; then notifications
    flow."""
    alice, bob = clients('alice'), clients('bob')
    node = new_node(alice, {'pubsub#access_model': 'authorize', 'pubsub#max_items': '10'})
    s = subscription_of(ok(subscribe(bob, node), 'subscribe'))
    assert s.get('subscription') == 'pending', tostr(s)
    assert_error(subscribe(bob, node), 'not-authorized', 'pending-subscription')

    def is_auth_form(e):
        if e.tag != q(NS_CLIENT, 'message') or e.get('from') != SERVICE:
            return False
        x = e.find(q(NS_XDATA, 'x'))
        if x is None:
            return False
        fields = {f.get('var'): values(f) for f in x.findall(q(NS_XDATA, 'field'))}
        return fields.get('FORM_TYPE') == [NS_SUB_AUTH] and fields.get('pubsub#node') == [node]
    m = take(alice, is_auth_form, 5, 'subscription approval form')
    x = m.find(q(NS_XDATA, 'x'))
    fields = {f.get('var'): values(f) for f in x.findall(q(NS_XDATA, 'field'))}
    assert [j.split('/')[0] for j in fields.get('pubsub#subscriber_jid', [])] == ['bob@' + HOST], fields
    assert 'pubsub#allow' in fields, fields
    assert_error(get_items(bob, node), ('not-authorized', 'forbidden', 'not-allowed'))
    answer = {'pubsub#node': node, 'pubsub#subscriber_jid': fields['pubsub#subscriber_jid'][0],
              'pubsub#allow': '1'}
    alice.send("<message to='%s' id='%s'>%s</message>" % (SERVICE, unique('approve'), form(answer, NS_SUB_AUTH)))
    e = take(bob, is_event('subscription', node), 5, 'approval notification')
    sub = e.find('%s/%s' % (q(NS_EVENT, 'event'), q(NS_EVENT, 'subscription')))
    assert sub.get('subscription') == 'subscribed', tostr(e)
    assert owner_list(alice, node, 'subscriptions').get(sub.get('jid')) == 'subscribed'
    published(alice, node, payload('approved'), 'ap')
    notified(bob, node, 'ap')


def test_access_lost_ends_subscriptions(server, clients):
    """§4.5, §12: items go to authorized subscribers only.  The owner makes
    an open node whitelist: the subscriber without affiliation loses its
    subscription and is told (<subscription subscription='none'/>), a
    member keeps its own; the member made none loses it too.  Neither
    hears of the items published after."""
    alice, bob, carol = clients('alice'), clients('bob'), clients('carol')
    node = new_node(alice, {'pubsub#access_model': 'open', 'pubsub#max_items': '10'})
    ok(owner_set(alice, node, 'affiliations', [('carol@' + HOST, 'member')]), 'make carol a member')
    subscribed(bob, node)
    subscribed(carol, node)
    ok(configure(alice, node, {'pubsub#access_model': 'whitelist'}), 'make the node whitelist')
    s = subscription_event(bob, node)
    assert s.get('subscription') == 'none' and s.get('jid').split('/')[0] == 'bob@' + HOST, tostr(s)
    subs = owner_list(alice, node, 'subscriptions')
    assert [j.split('/')[0] for j in subs] == ['carol@' + HOST], subs
    published(alice, node, payload('members only'), 'w1')
    notified(carol, node, 'w1')
    not_notified(bob, node, 'w1')
    nothing(carol, is_event('subscription', node), 0, 'subscription notification to a member')
    ok(owner_set(alice, node, 'affiliations', [('carol@' + HOST, 'none')]), 'carol is no member now')
    s = subscription_event(carol, node)
    assert s.get('subscription') == 'none' and s.get('jid').split('/')[0] == 'carol@' + HOST, tostr(s)
    assert owner_list(alice, node, 'subscriptions') == {}
    published(alice, node, payload('still members only'), 'w2')
    not_notified(carol, node, 'w2')
    not_notified(bob, node, 'w2')
    # nor does the owner subscribe an entity that may not read the node
    assert_error(owner_set(alice, node, 'subscriptions', [('bob@' + HOST, 'subscribed')]), 'not-acceptable')
    assert owner_list(alice, node, 'subscriptions') == {}


def test_presence_or_roster_group_lost_ends_subscriptions(server, clients):
    """§4.5, §12: the owner of a presence node cancels a contact's presence
    subscription (unsubscribed), and moves a contact of a roster node out of
    the allowed group: each loses its subscription, is told, and hears of
    no later item."""
    owner, friend, inner = fresh_user(server, 'po'), fresh_user(server, 'pf'), fresh_user(server, 'ri')
    roster_friends(server, owner, friend)
    roster_friends(server, owner, inner, group='inner circle')
    o, f, i = clients(owner), clients(friend), clients(inner)
    pnode = new_node(o, {'pubsub#access_model': 'presence', 'pubsub#max_items': '10'})
    rnode = new_node(o, {'pubsub#access_model': 'roster', 'pubsub#roster_groups_allowed': 'inner circle',
                         'pubsub#max_items': '10'})
    subscribed(f, pnode)
    subscribed(i, rnode)
    o.send("<presence to='%s@%s' type='unsubscribed'/>" % (friend, HOST))
    assert subscription_event(f, pnode).get('subscription') == 'none'
    _roster_set(o, '%s@%s' % (inner, HOST), 'others')
    assert subscription_event(i, rnode).get('subscription') == 'none'
    assert owner_list(o, pnode, 'subscriptions') == {}
    assert owner_list(o, rnode, 'subscriptions') == {}
    published(o, pnode, payload('friends only'), 'p1')
    published(o, rnode, payload('inner circle only'), 'r1')
    not_notified(f, pnode, 'p1')
    not_notified(i, rnode, 'r1')


# ---- the owner's management ------------------------------------------------------

def test_affiliations(server, clients):
    """§8.9: the owner sets publisher, publish-only, member and outcast and
    reads them back; each can do what §4.1 says and no more; only the
    owner may read or change them (<forbidden/>)."""
    alice, bob, carol, erin = clients('alice'), clients('bob'), clients('carol'), clients('erin')
    node = new_node(alice, {'pubsub#access_model': 'open', 'pubsub#max_items': '10'})
    dave = clients('dave', host=OTHER)
    ok(owner_set(alice, node, 'affiliations', [('bob@' + HOST, 'publisher'), ('carol@' + HOST, 'publish-only'),
                                              ('erin@' + HOST, 'member'), ('dave@' + OTHER, 'outcast')]), 'set')
    affs = owner_list(alice, node, 'affiliations')
    assert affs == {'alice@' + HOST: 'owner', 'bob@' + HOST: 'publisher', 'carol@' + HOST: 'publish-only',
                    'erin@' + HOST: 'member', 'dave@' + OTHER: 'outcast'}, affs
    published(bob, node, payload('by a publisher'), 'b1')
    published(carol, node, payload('by a publish-only'), 'c1')
    assert_error(publish(erin, node, payload('by a member'), 'e1'), 'forbidden')
    assert sorted(ids_of(ok(get_items(erin, node)))) == ['b1', 'c1']
    # §4.1: publish-only may not subscribe (unlike an entity without
    # affiliation on an open node)
    assert_error(subscribe(carol, node), ('forbidden', 'not-authorized', 'not-allowed'))
    assert_error(subscribe(dave, node), 'forbidden')
    assert_error(get_items(dave, node), 'forbidden')
    assert_error(ps(bob, 'get', "<affiliations node='%s'/>" % node, owner=True), 'forbidden')
    assert_error(owner_set(bob, node, 'affiliations', [('bob@' + HOST, 'owner')]), 'forbidden')
    # the user's own view (§5.7): bob sees his publisher affiliation
    r = ok(ps(bob, 'get', "<affiliations node='%s'/>" % node))
    mine = {a.get('node'): a.get('affiliation') for a in r.iter(q(NS_PUBSUB, 'affiliation'))}
    assert mine.get(node) == 'publisher', tostr(r)
    ok(owner_set(alice, node, 'affiliations', [('dave@' + OTHER, 'none')]), 'lift the ban')
    subscribed(dave, node)


def test_affiliations_one_entry_each_and_an_owner_stays(server, clients):
    """§8.9.2.4: two entries for one entity in one request are
    <bad-request/> and change nothing; the only owner cannot make itself
    anything else (<not-acceptable/>), whatever else the request holds; it
    may hand the node over in one request."""
    bob, carol = clients('bob'), clients('carol')
    b, c = 'bob@' + HOST, 'carol@' + HOST
    node = new_node(bob, {'pubsub#max_items': '10'})
    assert_error(owner_set(bob, node, 'affiliations', [(b, 'none'), (b, 'none')]), 'bad-request')
    assert_error(owner_set(bob, node, 'affiliations', [(b, 'none'), (c, 'owner'), (c, 'none')]), 'bad-request')
    assert_error(owner_set(bob, node, 'affiliations', [(b, 'none')]), 'not-acceptable')
    assert_error(owner_set(bob, node, 'affiliations', [(b, 'member'), (c, 'publisher')]), 'not-acceptable')
    assert owner_list(bob, node, 'affiliations') == {b: 'owner'}
    ok(owner_set(bob, node, 'affiliations', [(b, 'none'), (c, 'owner')]), 'hand the node to carol')
    assert owner_list(carol, node, 'affiliations') == {c: 'owner'}
    assert_error(ps(bob, 'get', "<configure node='%s'/>" % node, owner=True), 'forbidden')


def test_subscription_management(server, clients):
    """§8.8: the owner lists the subscriptions, removes one (none) and
    subscribes another JID (subscribed); each entity is told of its new
    state (§8.8.4)."""
    alice, bob, carol = clients('alice'), clients('bob'), clients('carol')
    node = new_node(alice, {'pubsub#max_items': '10'})
    subscribed(bob, node)
    subs = owner_list(alice, node, 'subscriptions')
    assert [v for j, v in subs.items() if j.split('/')[0] == 'bob@' + HOST] == ['subscribed'], subs
    assert_error(ps(bob, 'get', "<subscriptions node='%s'/>" % node, owner=True), 'forbidden')
    bob_jid = [j for j in subs if j.split('/')[0] == 'bob@' + HOST][0]
    ok(owner_set(alice, node, 'subscriptions', [(bob_jid, 'none'), ('carol@' + HOST, 'subscribed')]), 'set')
    s = subscription_event(bob, node)
    assert (s.get('jid'), s.get('subscription')) == (bob_jid, 'none'), tostr(s)
    s = subscription_event(carol, node)
    assert (s.get('jid'), s.get('subscription')) == ('carol@' + HOST, 'subscribed'), tostr(s)
    subs = owner_list(alice, node, 'subscriptions')
    assert not [j for j in subs if j.split('/')[0] == 'bob@' + HOST], subs
    assert subs.get('carol@' + HOST) == 'subscribed', subs
    drain(bob, 0.3)
    published(alice, node, payload('managed'), 'mg')
    notified(carol, node, 'mg')
    nothing(bob, is_event('items', node), 0.8, 'notification after the owner removed the subscription')
    # the subscriber's own view (§5.6)
    r = ok(ps(carol, 'get', "<subscriptions node='%s'/>" % node))
    assert [s.get('subscription') for s in r.iter(q(NS_PUBSUB, 'subscription'))] == ['subscribed'], tostr(r)


def test_publish_options_precondition(server, clients):
    """§7.1.5: publish-options that match the node's configuration are
    accepted; one that does not is <conflict/> with <precondition-not-met/>
    and nothing is published."""
    alice = clients('alice')
    node = new_node(alice, {'pubsub#access_model': 'open', 'pubsub#max_items': '10'})
    published(alice, node, payload('matching'), 'ok1', options={'pubsub#access_model': 'open'})
    r = publish(alice, node, payload('mismatch'), 'bad1', options={'pubsub#access_model': 'whitelist'})
    assert_error(r, 'conflict', 'precondition-not-met')
    assert ids_of(ok(get_items(alice, node))) == ['ok1']
    assert configure_get(alice, node).get('pubsub#access_model') == ['open']


def test_publish_options_unknown_field(server, clients):
    """§7.1.5: a service that advertises publish-options MUST reject a
    publication with a field it does not know (<conflict/> with
    <precondition-not-met/>), whether the node exists or the publish would
    create it; no node is made."""
    alice = clients('alice')
    node = unique('unknown-field')
    r = publish(alice, node, payload('x'), 'i1', options={'pubsub#no_such_field': 'x'})
    assert_error(r, 'conflict', 'precondition-not-met', 'publish creating a node')
    assert_error(get_items(alice, node), 'item-not-found', what='items of the node not made')
    published(alice, node, payload('plain'), 'i2')
    r = publish(alice, node, payload('x'), 'i3', options={'pubsub#no_such_field': 'x'})
    assert_error(r, 'conflict', 'precondition-not-met', 'publish to the node')
    assert ids_of(ok(get_items(alice, node))) == ['i2']


def test_publish_item_required_and_forbidden(server, clients):
    """§7.1.3.6: a publish without <item/> to a persistent node is
    <bad-request/> with <item-required/>; an item to a transient
    notification node (persist_items and deliver_payloads false) is
    <bad-request/> with <item-forbidden/>, and that node takes a publish
    without an item."""
    alice = clients('alice')
    node = new_node(alice)
    assert_error(ps(alice, 'set', "<publish node='%s'/>" % node), 'bad-request', 'item-required')
    assert ids_of(ok(get_items(alice, node))) == []
    transient = new_node(alice, {'pubsub#persist_items': '0', 'pubsub#deliver_payloads': '0'})
    assert_error(publish(alice, transient, payload('x'), 't1'), 'bad-request', 'item-forbidden')
    ok(ps(alice, 'set', "<publish node='%s'/>" % transient), 'notification-only publish')
    assert 't1' not in ids_of(ok(get_items(alice, transient)))


def test_max_items(server, clients):
    """pubsub#max_items (§16.4.3, node_config): the oldest items go past the limit; "max"
    is accepted (the service's largest); a number over the service's
    per-node cap (1000 by default) is refused."""
    alice = clients('alice')
    node = new_node(alice, {'pubsub#max_items': '2'})
    for i in range(4):
        published(alice, node, payload('m%d' % i), 'm%d' % i)
    assert sorted(ids_of(ok(get_items(alice, node)))) == ['m2', 'm3']
    ok(configure(alice, node, {'pubsub#max_items': 'max'}), 'max_items=max')
    assert configure_get(alice, node).get('pubsub#max_items') in (['max'], ['1000']), \
        configure_get(alice, node)
    for i in range(4, 8):
        published(alice, node, payload('m%d' % i), 'm%d' % i)
    assert len(ids_of(ok(get_items(alice, node)))) == 6
    r = configure(alice, node, {'pubsub#max_items': '1000000'})
    assert_error(r, ('not-acceptable', 'policy-violation'))
    r = create(alice, unique('huge'), {'pubsub#max_items': '1000000'}, expect_ok=False)
    assert_error(r, ('not-acceptable', 'policy-violation'))


# ---- who may create ------------------------------------------------------------

def test_access_create_local(server, clients):
    """access_create local (the default): a user of another host may not
    create nodes on pubsub.test.local (<forbidden/>, §8.1.1 error cases)."""
    dave = clients('dave', host=OTHER)
    assert_error(create(dave, unique('foreign'), expect_ok=False), 'forbidden')
    assert_error(create(dave, expect_ok=False), 'forbidden')


def test_access_create_list_and_admins(limited):
    """access_create list: only bob (create_list) creates; alice, an admin
    but not listed, and carol are refused; access_create admins on
    pubsub.other.local: dave, not an admin, is refused."""
    bob = connect(limited, 'bob')
    carol = connect(limited, 'carol')
    dave = connect(limited, 'dave', host=OTHER)
    try:
        create(bob, unique('listed'))
        assert_error(create(carol, unique('unlisted'), expect_ok=False), 'forbidden')
        assert_error(create(dave, unique('noadmin'), to='pubsub.' + OTHER, expect_ok=False), 'forbidden')
    finally:
        for c in (bob, carol, dave):
            c.close()


# ---- bad input ----------------------------------------------------------------

def test_huge_item_refused(limited):
    """A 10 MB item (under the stream's 12M stanza limit, over the 256K
    max_item_size) is refused with <not-acceptable/> and <payload-too-big/>
    (§7.1.3.4); the publisher's stream and other users carry on."""
    bob = connect(limited, 'bob')
    w = parleytest.Witness(limited)
    try:
        node = create(bob, unique('big'))
        big = 'x' * (10 * 1024 * 1024)
        iq_id = unique('big')
        bob.sock.settimeout(60)
        bob.send("<iq type='set' id='%s' to='%s'><pubsub xmlns='%s'><publish node='%s'><item id='big'>"
                 "<blob xmlns='%s'>%s</blob></item></publish></pubsub></iq>"
                 % (iq_id, SERVICE, NS_PUBSUB, node, NS_TEST, big))
        r = take(bob, lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == iq_id, 60, 'answer to the big item')
        assert_error(r, 'not-acceptable', 'payload-too-big')
        assert ids_of(ok(get_items(bob, node))) == []
        published(bob, node, payload('small is fine'), 'small')
        w.check()
    finally:
        bob.close()
        w.close()


def test_too_many_nodes(limited):
    """max_nodes_per_user 5: a node beyond the fifth a user owns is refused
    (<not-allowed/> or <policy-violation/>, with <max-nodes-exceeded/> where
    given); deleting one makes room again."""
    bob = connect(limited, 'bob')
    try:
        r = ok(ps(bob, 'get', '<affiliations/>'), 'own affiliations')
        owned = [a.get('node') for a in r.iter(q(NS_PUBSUB, 'affiliation')) if a.get('affiliation') == 'owner']
        assert len(owned) <= 5, tostr(r)
        made = [create(bob, unique('n')) for _ in range(5 - len(owned))]
        r = create(bob, unique('n'), expect_ok=False)
        cond, app = ps_error(r)
        assert cond in ('not-allowed', 'policy-violation', 'resource-constraint'), tostr(r)
        assert app in (None, 'max-nodes-exceeded'), tostr(r)
        ok(ps(bob, 'set', "<delete node='%s'/>" % (made + owned)[0], owner=True), 'delete')
        create(bob, unique('n'))
    finally:
        bob.close()


def test_malformed_forms(server, clients):
    """Forms that are not forms of the right kind are <bad-request/> (or
    <not-acceptable/>: a submitted form with a wrong FORM_TYPE, a value
    that is not a boolean, a number or an access model); a publish without
    node or with two payloads, or an empty <pubsub/>, is <bad-request/>;
    nothing changes."""
    alice = clients('alice')
    node = new_node(alice, {'pubsub#title': 'unchanged'})
    r = ps(alice, 'set', "<configure node='%s'>%s</configure>"
           % (node, form({'pubsub#title': 'wrong type'}, 'urn:example:not-node-config')), owner=True)
    assert_error(r, ('bad-request', 'not-acceptable'))
    r = configure(alice, node, {'pubsub#deliver_payloads': 'perhaps'})
    assert_error(r, ('bad-request', 'not-acceptable'))
    r = configure(alice, node, {'pubsub#max_items': 'many'})
    assert_error(r, ('bad-request', 'not-acceptable'))
    r = ps(alice, 'set', "<configure node='%s'><x xmlns='%s' type='submit'><field><value>1</value></field></x>"
           "</configure>" % (node, NS_XDATA), owner=True)
    assert_error(r, ('bad-request', 'not-acceptable'))
    r = create(alice, unique('bad'), {'pubsub#access_model': 'everybody'}, expect_ok=False)
    assert_error(r, ('bad-request', 'not-acceptable'))
    assert configure_get(alice, node).get('pubsub#title') == ['unchanged']
    # a publish without a NodeID (<nodeid-required/>, the pubsub#errors
    # condition for requests without a node); §7.1.3.5: an item with two payloads
    assert_error(ps(alice, 'set', '<publish><item>%s</item></publish>' % payload('x')), 'bad-request',
                 'nodeid-required')
    assert_error(publish(alice, node, payload('one') + payload('two'), 'two'), 'bad-request', 'invalid-payload')
    assert ids_of(ok(get_items(alice, node))) == []
    assert_error(ps(alice, 'set', ''), ('bad-request', 'feature-not-implemented'))
    sync(alice)


def test_nonexistent_node(server, clients):
    """Every operation on a node that does not exist is <item-not-found/>
    (§6.1.3.12, §6.5.9.11, §7.1.3.3, §8.2.3.4, §8.4.3.2, §8.5.3.2)."""
    alice = clients('alice')
    node = unique('ghost')
    assert_error(get_items(alice, node), 'item-not-found')
    assert_error(subscribe(alice, node), 'item-not-found')
    if NS_PUBSUB + '#auto-create' not in features(disco_info(alice, SERVICE)):
        assert_error(publish(alice, node, payload('into the void'), 'v'), 'item-not-found')
    else:
        # §7.1.4 auto-create, advertised: the publish creates the node
        published(alice, node, payload('creates the node'), 'v')
        ok(ps(alice, 'set', "<delete node='%s'/>" % node, owner=True), 'delete')
    assert_error(ps(alice, 'get', "<configure node='%s'/>" % node, owner=True), 'item-not-found')
    assert_error(ps(alice, 'set', "<delete node='%s'/>" % node, owner=True), 'item-not-found')
    assert_error(ps(alice, 'set', "<purge node='%s'/>" % node, owner=True), 'item-not-found')
    assert_error(ps(alice, 'set', "<retract node='%s'><item id='x'/></retract>" % node), 'item-not-found')


# ---- persistence ------------------------------------------------------------------

def test_access_checked_at_delivery_and_cancellations_stored(fresh_server):
    """A subscription cancelled as its entity lost access stays cancelled
    after a restart (the store has it); and a subscription the store holds
    for an entity without access (the node's row made whitelist outside the
    server) brings no notification: delivery judges access itself (§12)."""
    srv = fresh_server
    alice, bob, carol = connect(srv, 'alice'), connect(srv, 'bob'), connect(srv, 'carol')
    try:
        gone = new_node(alice, {'pubsub#access_model': 'whitelist', 'pubsub#max_items': '10'})
        ok(owner_set(alice, gone, 'affiliations', [('carol@' + HOST, 'member')]), 'make carol a member')
        subscribed(carol, gone)
        ok(owner_set(alice, gone, 'affiliations', [('carol@' + HOST, 'none')]), 'carol is no member now')
        assert subscription_event(carol, gone).get('subscription') == 'none'
        closed = new_node(alice, {'pubsub#access_model': 'open', 'pubsub#max_items': '10'})
        subscribed(bob, closed)
    finally:
        for c in (alice, bob, carol):
            c.close()
    assert srv.stop() == 0
    srv.db_query("UPDATE pubsub_node SET config = REPLACE(config, 'access_model=open', 'access_model=whitelist') "
                 "WHERE node = ?", (closed,))
    srv.start()
    alice, bob = connect(srv, 'alice'), connect(srv, 'bob')
    try:
        assert owner_list(alice, gone, 'subscriptions') == {}
        assert configure_get(alice, closed).get('pubsub#access_model') == ['whitelist']
        published(alice, closed, payload('members only'), 'c1')
        not_notified(bob, closed, 'c1')
    finally:
        alice.close()
        bob.close()


def test_nodes_items_and_subscriptions_survive_restart(fresh_server):
    """Nodes with their configuration, affiliations, subscriptions and items,
    and PEP items, are kept in the host's store: after a restart they are
    all there, and the subscription still brings notifications."""
    srv = fresh_server
    alice, bob = connect(srv, 'alice'), connect(srv, 'bob')
    try:
        node = new_node(alice, {'pubsub#title': 'kept', 'pubsub#max_items': '10'})
        published(alice, node, payload('first'), 'k1')
        published(alice, node, payload('second'), 'k2')
        subscribed(bob, node)
        ok(owner_set(alice, node, 'affiliations', [('carol@' + HOST, 'publisher')]), 'affiliation')
        ok(publish(alice, NS_TEST, payload('pep item'), 'p1', to='alice@' + HOST), 'PEP publish')
    finally:
        alice.close()
        bob.close()
    assert srv.stop() == 0
    srv.start()
    alice, bob = connect(srv, 'alice'), connect(srv, 'bob')
    try:
        assert sorted(ids_of(ok(get_items(bob, node)))) == ['k1', 'k2']
        assert titles(ok(get_items(bob, node, ids=['k2']))) == ['second']
        assert configure_get(alice, node).get('pubsub#title') == ['kept']
        assert owner_list(alice, node, 'affiliations').get('carol@' + HOST) == 'publisher'
        subs = owner_list(alice, node, 'subscriptions')
        assert [v for j, v in subs.items() if j.split('/')[0] == 'bob@' + HOST] == ['subscribed'], subs
        assert ids_of(ok(get_items(alice, NS_TEST, to='alice@' + HOST))) == ['p1']
        published(alice, node, payload('after the restart'), 'k3')
        notified(bob, node, 'k3')
    finally:
        alice.close()
        bob.close()
