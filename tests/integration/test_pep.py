"""PEP (XEP-0163) on the accounts of test.local: nodes created by the first
publish, the default access model "presence", notifications filtered by
the +notify features of the contacts' verified entity capabilities
(XEP-0115), the last item when a contact comes online, notifications to
the owner's own resources, XEP-0223 private data, the OMEMO (XEP-0384)
nodes that anyone may read, no notification to a contact who blocked the
publisher (XEP-0191), a caps ver whose disco#info does not match it
(the next client with that ver is asked again: the lie is not cached),
the last item to a contact whose subscription is approved while online
(§4.3.4), a contact whose presence subscription the owner cancels losing
its explicit subscription to a presence node (XEP-0060 §12), and a
contact on another server (a raw federation peer) whose
resources' caps come with the presence the owner receives.

The contacts are slixmpp clients with the xep_0115 and xep_0163 plugins
(their +notify interests are in their caps, as a real client's); the caps
mismatch case speaks with RawClient, so the lying answer is exact.  Each
case makes fresh accounts so the rosters of one do not leak into another.
The caps cache itself is tested by test_caps.py; here only what PEP does
with it."""
import asyncio
import base64
import hashlib
import time

import pytest

import parleytest
from parleytest import (FED_A, FED_B, HOST, NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_SERVER, OTHER, RawClient, q,
                        tostr, unique)
from test_muc import connect, fresh_user, take, take_all
from test_pubsub import (NS_EVENT, NS_PUBSUB, NS_PUBLISH_OPTIONS, assert_error, event_items, form, ids_of,
                         not_notified, published, roster_friends, subscribed, subscription_event)

NS_CAPS = 'http://jabber.org/protocol/caps'
NS_BLOCKING = 'urn:xmpp:blocking'
NS_AXOLOTL = 'eu.siacs.conversations.axolotl'
NODE_DEVICES = NS_AXOLOTL + '.devicelist'
NS_TUNE = 'http://jabber.org/protocol/tune'
NS_MOOD = 'http://jabber.org/protocol/mood'
NS_BOOKMARKS = 'urn:xmpp:bookmarks:1'


# ---- clients with caps -----------------------------------------------------------

async def pep_client(server, user, notify=(), host=HOST, resource=None):
    """A logged-in slixmpp client whose caps hold notify+'+notify' for each
    node (and a feature of its own, so its ver is new to the server and is
    asked for); returns once the server asked for the ver and had the
    answer.  Every message with a pubsub <event/> goes to c.events."""
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath
    c = await parleytest.login(server, user, host=host, resource=resource or unique('pep-'))
    for p in ('xep_0030', 'xep_0115', 'xep_0163', 'xep_0060'):
        c.register_plugin(p)
    c.events = asyncio.Queue()
    c.register_handler(Callback('test pubsub events', MatchXPath('{%s}message/{%s}event' % (NS_CLIENT, NS_EVENT)),
                                lambda m: c.events.put_nowait(m.xml)))
    asked = asyncio.Event()

    def caps_query(stanza):
        if stanza['type'] == 'get' and '#' in (stanza['disco_info']['node'] or ''):
            asked.set()
    c.register_handler(Callback('test caps query', MatchXPath('{%s}iq/{%s}query' % (NS_CLIENT, NS_DISCO_INFO)),
                                caps_query))
    await c['xep_0030'].add_feature('urn:example:parley-test:' + unique('f'))
    if notify:
        c['xep_0163'].add_interest(list(notify))
    await asyncio.sleep(0)
    await c['xep_0115'].update_caps(broadcast=False)
    c.send_presence()
    try:
        await asyncio.wait_for(asked.wait(), 10)
    except asyncio.TimeoutError:
        c.abort()
        raise AssertionError('%s: the server never asked for the disco#info of its caps ver' % user)
    await asyncio.sleep(0.3)
    await parleytest.iq(c, 'get', host, "<ping xmlns='%s'/>" % NS_PING)
    return c


def bare_of(c):
    return c.boundjid.bare


async def pep(c, typ, payload, to=None):
    """A pubsub iq to the account to (default: c's own)."""
    return await parleytest.iq(c, typ, to or bare_of(c), "<pubsub xmlns='%s'>%s</pubsub>" % (NS_PUBSUB, payload))


async def pep_publish(c, node, body, item_id=None, options=None):
    i = " id='%s'" % item_id if item_id else ''
    opts = '<publish-options>%s</publish-options>' % form(options, NS_PUBLISH_OPTIONS) if options else ''
    return await pep(c, 'set', "<publish node='%s'><item%s>%s</item></publish>%s" % (node, i, body, opts))


async def pep_published(c, node, body, item_id=None, options=None):
    r = await pep_publish(c, node, body, item_id, options)
    assert r.get('type') == 'result', 'publish to %s: %s' % (node, tostr(r))
    return r


async def pep_items(c, owner, node):
    return await pep(c, 'get', "<items node='%s'/>" % node, to=owner)


def tune(title):
    return "<tune xmlns='%s'><title>%s</title></tune>" % (NS_TUNE, title)


def is_pep_event(owner, node, item_id=None):
    def pred(e):
        if e.get('from') != owner:
            return False
        items = e.find('%s/%s' % (q(NS_EVENT, 'event'), q(NS_EVENT, 'items')))
        if items is None or items.get('node') != node:
            return False
        return item_id is None or any(x.get('id') == item_id for x in items)
    return pred


async def pep_event(c, owner, node, item_id=None, timeout=5.0):
    """The next notification of owner's node (others are dropped)."""
    pred = is_pep_event(owner, node, item_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError('%s got no notification of %s %s/%s' % (c.boundjid, owner, node, item_id))
        try:
            e = await asyncio.wait_for(c.events.get(), left)
        except asyncio.TimeoutError:
            continue
        if pred(e):
            return e


async def no_pep_event(c, owner, node, wait=1.0):
    pred = is_pep_event(owner, node)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return
        try:
            e = await asyncio.wait_for(c.events.get(), left)
        except asyncio.TimeoutError:
            return
        assert not pred(e), '%s got a notification it must not: %s' % (c.boundjid, tostr(e))


def contacts(server, owner, *others):
    """Presence subscriptions both ways between owner and each of others
    (XEP-0163 "Use Presence": the contact's caps reach the owner with its
    presence, which needs the subscription 'both')."""
    for o in others:
        roster_friends(server, owner, o)
        roster_friends(server, o, owner)


def people(server, *prefixes):
    """Fresh accounts, one per prefix."""
    return [fresh_user(server, p) for p in prefixes]


# ---- the cases ---------------------------------------------------------------------

def test_auto_create_on_publish(server, run):
    """XEP-0163 §3 (auto-create): the first publish creates the node; its
    access model is presence (§5) and it keeps one item (Parley's default
    for PEP nodes)."""
    owner, = people(server, 'pa')

    async def go():
        c = await parleytest.login(server, owner, resource=unique('pep-'))
        try:
            assert_error(await pep_items(c, bare_of(c), NS_TUNE), 'item-not-found')
            await pep_published(c, NS_TUNE, tune('first'), 't1')
            await pep_published(c, NS_TUNE, tune('second'), 't2')
            r = await pep_items(c, bare_of(c), NS_TUNE)
            assert ids_of(r) == ['t2'], 'a PEP node keeps only its last item by default: %s' % tostr(r)
            r = await parleytest.iq(c, 'get', bare_of(c), "<pubsub xmlns='%s#owner'><configure node='%s'/></pubsub>"
                                    % (NS_PUBSUB, NS_TUNE))
            assert r.get('type') == 'result', tostr(r)
            fields = {f.get('var'): [v.text for v in f.findall('{jabber:x:data}value')]
                      for f in r.iter('{jabber:x:data}field')}
            assert fields.get('pubsub#access_model') == ['presence'], fields
            # §6.1: the account answers disco#info with the pubsub/pep identity
            r = await parleytest.iq(c, 'get', bare_of(c), "<query xmlns='%s'/>" % NS_DISCO_INFO)
            idents = [(i.get('category'), i.get('type')) for i in r.iter(q(NS_DISCO_INFO, 'identity'))]
            assert ('pubsub', 'pep') in idents, tostr(r)
        finally:
            await parleytest.logout(c)
    run(go(), timeout=60)


def test_presence_access_and_notify_filter(server, run):
    """Default access model presence: a contact subscribed to the owner's
    presence with tune+notify in its caps gets the notification; a contact
    whose caps lack it does not (XEP-0163 §4.2 filtering); a stranger with
    tune+notify gets nothing and is refused the items with <not-authorized/>
    and <presence-subscription-required/> (XEP-0060 §6.5.9)."""
    owner, fan, other, stranger = people(server, 'po', 'pf', 'px', 'ps')
    contacts(server, owner, fan, other)

    async def go():
        o = await parleytest.login(server, owner, resource=unique('pep-'))
        f = await pep_client(server, fan, notify=[NS_TUNE])
        x = await pep_client(server, other, notify=[NS_MOOD])
        s = await pep_client(server, stranger, notify=[NS_TUNE])
        try:
            ob = bare_of(o)
            await pep_published(o, NS_TUNE, tune('for contacts'), 'c1')
            e = await pep_event(f, ob, NS_TUNE, 'c1')
            kind, iid, p = event_items(e)[0]
            assert (kind, iid) == ('item', 'c1') and p is not None and 'for contacts' in tostr(p), tostr(e)
            await no_pep_event(x, ob, NS_TUNE, 1.0)
            await no_pep_event(s, ob, NS_TUNE, 0.2)
            assert ids_of(await pep_items(f, ob, NS_TUNE)) == ['c1']
            assert_error(await pep_items(s, ob, NS_TUNE), 'not-authorized', 'presence-subscription-required')
        finally:
            await parleytest.logout(o, f, x, s)
    run(go(), timeout=90)


def test_last_item_when_contact_comes_online(server, run):
    """XEP-0163 §4.3.3 and §4.3.4: a contact whose available presence (with
    tune+notify caps) arrives after the publish gets the last item."""
    owner, fan = people(server, 'lo', 'lf')
    contacts(server, owner, fan)

    async def go():
        o = await parleytest.login(server, owner, resource=unique('pep-'))
        try:
            await pep_published(o, NS_TUNE, tune('played earlier'), 'early')
            f = await pep_client(server, fan, notify=[NS_TUNE])
            try:
                e = await pep_event(f, bare_of(o), NS_TUNE, 'early', timeout=5)
                assert 'played earlier' in tostr(e)
            finally:
                await parleytest.logout(f)
        finally:
            await parleytest.logout(o)
    run(go(), timeout=60)


def test_last_item_to_new_subscriber(server, run):
    """XEP-0163 §4.3.4: a contact whose presence subscription to the owner
    is approved while both are online (tune+notify caps known already)
    gets the last item then, not at the next publish."""
    owner, fan = people(server, 'no', 'nf')

    async def go():
        o = await parleytest.login(server, owner, resource=unique('pep-'))
        o.auto_authorize = None
        f = await pep_client(server, fan, notify=[NS_TUNE])
        try:
            ob = bare_of(o)
            await pep_published(o, NS_TUNE, tune('before you came'), 'before')
            await no_pep_event(f, ob, NS_TUNE, 0.5)
            asked = asyncio.Event()
            o.add_event_handler('presence_subscribe', lambda p: asked.set())
            f.send_presence(pto=ob, ptype='subscribe')
            await asyncio.wait_for(asked.wait(), 5)
            o.send_presence(pto=bare_of(f), ptype='subscribed')
            e = await pep_event(f, ob, NS_TUNE, 'before', timeout=5)
            assert 'before you came' in tostr(e), tostr(e)
            assert e.find(q('urn:xmpp:delay', 'delay')) is not None, tostr(e)
        finally:
            await parleytest.logout(o, f)
    run(go(), timeout=60)


def test_presence_lost_ends_subscription(server):
    """XEP-0060 §4.5, §12: a contact subscribed explicitly to a presence
    node of the owner; the owner cancels the contact's presence
    subscription (unsubscribed): the subscription is cancelled, the contact
    told (<subscription subscription='none'/>) and the items published
    after do not reach it."""
    owner, friend = people(server, 'uo', 'uf')
    roster_friends(server, owner, friend)
    o, f = connect(server, owner), connect(server, friend)
    try:
        oj = '%s@%s' % (owner, HOST)
        published(o, NS_TUNE, tune('first'), 'u1', to=oj)
        subscribed(f, NS_TUNE, to=oj)
        o.send("<presence to='%s@%s' type='unsubscribed'/>" % (friend, HOST))
        s = subscription_event(f, NS_TUNE, frm=oj)
        assert s.get('subscription') == 'none' and s.get('jid').split('/')[0] == '%s@%s' % (friend, HOST), \
            tostr(s)
        published(o, NS_TUNE, tune('not for former contacts'), 'u2', to=oj)
        not_notified(f, NS_TUNE, 'u2', frm=oj)
    finally:
        o.close()
        f.close()


def test_owner_resources_notified(server, run):
    """XEP-0163 §3 and §4 (3.): a publish from one resource is notified to every
    resource of the owner (each with tune+notify caps), the publishing one
    included; a resource that comes online later gets the last item."""
    owner, = people(server, 'ro')

    async def go():
        r1 = await pep_client(server, owner, notify=[NS_TUNE], resource='one')
        r2 = await pep_client(server, owner, notify=[NS_TUNE], resource='two')
        try:
            ob = bare_of(r1)
            await pep_published(r1, NS_TUNE, tune('mine'), 'own1')
            await pep_event(r2, ob, NS_TUNE, 'own1')
            await pep_event(r1, ob, NS_TUNE, 'own1')
            # §4.3.4: a newly available resource of the owner gets the last item
            r3 = await pep_client(server, owner, notify=[NS_TUNE], resource='three')
            try:
                e = await pep_event(r3, ob, NS_TUNE, 'own1')
                assert 'mine' in tostr(e), tostr(e)
            finally:
                await parleytest.logout(r3)
        finally:
            await parleytest.logout(r1, r2)
    run(go(), timeout=60)


def test_private_data_whitelist(server, run):
    """XEP-0223: a node published with publish-options access_model
    whitelist and persist_items true (bookmarks, with the publish-options
    of XEP-0402, max_items max among them: every bookmark is kept) is the
    owner's only: a contact with +notify gets no notification and is refused the
    items; a later publish that asks for another access model is refused
    with <precondition-not-met/> (XEP-0060 §7.1.5)."""
    owner, fan = people(server, 'wo', 'wf')
    contacts(server, owner, fan)
    # what XEP-0402 §3.4 clients send with each bookmark
    private = {'pubsub#persist_items': 'true', 'pubsub#max_items': 'max',
               'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist'}
    bookmark = "<conference xmlns='%s' name='The room' autojoin='true'><nick>me</nick></conference>" % NS_BOOKMARKS

    async def go():
        o = await parleytest.login(server, owner, resource=unique('pep-'))
        f = await pep_client(server, fan, notify=[NS_BOOKMARKS])
        try:
            ob = bare_of(o)
            room = 'secret-room@conference.' + HOST
            await pep_published(o, NS_BOOKMARKS, bookmark, room, options=private)
            await no_pep_event(f, ob, NS_BOOKMARKS, 1.0)
            r = await pep_items(f, ob, NS_BOOKMARKS)
            assert r.get('type') == 'error' and 'secret-room' not in tostr(r), tostr(r)
            assert_error(r, ('not-allowed', 'forbidden', 'not-authorized'))
            assert ids_of(await pep_items(o, ob, NS_BOOKMARKS)) == [room]
            second = 'second-room@conference.' + HOST
            await pep_published(o, NS_BOOKMARKS, bookmark, second, options=private)
            assert sorted(ids_of(await pep_items(o, ob, NS_BOOKMARKS))) == sorted([room, second]), \
                'max_items max keeps every bookmark'
            r = await pep_publish(o, NS_BOOKMARKS, bookmark, 'other@conference.' + HOST,
                                  options={'pubsub#access_model': 'presence'})
            assert_error(r, 'conflict', 'precondition-not-met')
        finally:
            await parleytest.logout(o, f)
    run(go(), timeout=60)


def test_omemo_nodes_open(server, run):
    """XEP-0384 (0.3, eu.siacs.conversations.axolotl): the device list and a
    bundle published with access_model open are read by a stranger of the
    same host and by a user of another host; the stranger subscribes to the
    device list and is told of the next one."""
    owner, stranger = people(server, 'oo', 'os')
    device = '1234567'
    devicelist = "<list xmlns='%s'><device id='%s'/></list>" % (NS_AXOLOTL, device)
    bundle = ("<bundle xmlns='%s'><signedPreKeyPublic signedPreKeyId='1'>BQ==</signedPreKeyPublic>"
              "<signedPreKeySignature>AA==</signedPreKeySignature><identityKey>BQ==</identityKey>"
              "<prekeys><preKeyPublic preKeyId='1'>BQ==</preKeyPublic></prekeys></bundle>" % NS_AXOLOTL)
    open_ = {'pubsub#access_model': 'open'}

    async def go():
        o = await parleytest.login(server, owner, resource=unique('pep-'))
        s = await pep_client(server, stranger)
        d = await parleytest.login(server, 'dave', host=OTHER, resource=unique('pep-'))
        try:
            ob = bare_of(o)
            await pep_published(o, NODE_DEVICES, devicelist, 'current', options=open_)
            bundles = '%s.bundles:%s' % (NS_AXOLOTL, device)
            await pep_published(o, bundles, bundle, 'current', options=open_)
            for reader in (s, d):
                r = await pep_items(reader, ob, NODE_DEVICES)
                assert ids_of(r) == ['current'] and "id=\"%s\"" % device in tostr(r), tostr(r)
                r = await pep_items(reader, ob, bundles)
                assert ids_of(r) == ['current'] and 'signedPreKeyPublic' in tostr(r), tostr(r)
            # XEP-0163 §4 (1.): an explicit subscription to an open node
            # brings the notifications without a presence subscription
            r = await pep(s, 'set', "<subscribe node='%s' jid='%s'/>" % (NODE_DEVICES, bare_of(s)), to=ob)
            assert r.get('type') == 'result', tostr(r)
            # §4.3.4: the last published item goes to a new subscriber
            e = await pep_event(s, ob, NODE_DEVICES, 'current')
            assert '1234567' in tostr(e) and e.find('{urn:xmpp:delay}delay') is not None, tostr(e)
            newer = devicelist.replace("</list>", "<device id='7654321'/></list>")
            await pep_published(o, NODE_DEVICES, newer, 'current', options=open_)
            e = await pep_event(s, ob, NODE_DEVICES, 'current')
            assert '7654321' in tostr(e), tostr(e)
        finally:
            await parleytest.logout(o, s, d)
    run(go(), timeout=60)


def test_blocked_publisher_not_notified(server, run):
    """A contact who blocked the publisher (XEP-0191: nothing from a blocked
    JID is delivered) gets no notification; after unblocking, notifications
    come again; a contact the owner blocked gets none (XEP-0163 §4.3.3)."""
    owner, fan = people(server, 'bo', 'bf')
    contacts(server, owner, fan)

    async def go():
        o = await parleytest.login(server, owner, resource=unique('pep-'))
        f = await pep_client(server, fan, notify=[NS_TUNE])
        try:
            ob = bare_of(o)
            await pep_published(o, NS_TUNE, tune('before'), 'b1')
            await pep_event(f, ob, NS_TUNE, 'b1')
            r = await parleytest.iq(f, 'set', None, "<block xmlns='%s'><item jid='%s'/></block>" % (NS_BLOCKING, ob))
            assert r.get('type') == 'result', tostr(r)
            await pep_published(o, NS_TUNE, tune('while blocked'), 'b2')
            await no_pep_event(f, ob, NS_TUNE, 1.0)
            r = await parleytest.iq(f, 'set', None, "<unblock xmlns='%s'><item jid='%s'/></unblock>"
                                    % (NS_BLOCKING, ob))
            assert r.get('type') == 'result', tostr(r)
            await pep_published(o, NS_TUNE, tune('after'), 'b3')
            await pep_event(f, ob, NS_TUNE, 'b3')
            # the owner blocks the contact (XEP-0163 §4.3.3): nothing either
            fb = bare_of(f)
            r = await parleytest.iq(o, 'set', None, "<block xmlns='%s'><item jid='%s'/></block>" % (NS_BLOCKING, fb))
            assert r.get('type') == 'result', tostr(r)
            await pep_published(o, NS_TUNE, tune('owner blocks'), 'b4')
            await no_pep_event(f, ob, NS_TUNE, 1.0)
        finally:
            await parleytest.logout(o, f)
    run(go(), timeout=60)


# ---- a caps ver that lies ----------------------------------------------------------

CAPS_NODE = 'urn:example:parley-test:client'


def caps_ver(identities, feats):
    """XEP-0115 §5.1 verification string (sha-1; no extended forms)."""
    s = ''.join('%s/%s/%s/%s<' % i for i in sorted(identities))
    s += ''.join(f + '<' for f in sorted(feats))
    return base64.b64encode(hashlib.sha1(s.encode('utf-8')).digest()).decode()


def disco_answer(query, identities, feats):
    node = query.find(q(NS_DISCO_INFO, 'query')).get('node')
    inner = ''.join("<identity category='%s' type='%s' xml:lang='%s' name='%s'/>" % i if i[2] else
                    "<identity category='%s' type='%s' name='%s'/>" % (i[0], i[1], i[3]) for i in identities)
    inner += ''.join("<feature var='%s'/>" % f for f in feats)
    return ("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>%s</query></iq>"
            % (query.get('id'), query.get('from'), NS_DISCO_INFO, node, inner))


def caps_query_pred(ver):
    def pred(e):
        if e.tag != q(NS_CLIENT, 'iq') or e.get('type') != 'get':
            return False
        qe = e.find(q(NS_DISCO_INFO, 'query'))
        return qe is not None and qe.get('node') == '%s#%s' % (CAPS_NODE, ver)
    return pred


def test_caps_mismatch_does_not_poison(server):
    """A client announces a ver but answers the server's disco#info with
    features that do not hash to it (XEP-0115 §5.4: the ver is not
    verified, nothing is cached).  A second client announcing the same
    ver is asked again, answers truthfully, and so gets the notifications
    its tune+notify asks for; the liar gets none."""
    owner, fan = people(server, 'co', 'cf')
    contacts(server, owner, fan)
    idents = [('client', 'pc', '', 'Parley test')]
    honest = [NS_CAPS, NS_DISCO_INFO, NS_TUNE + '+notify', 'urn:example:parley-test:' + unique('f')]
    ver = caps_ver(idents, honest)
    lie = [NS_CAPS, NS_DISCO_INFO, NS_TUNE + '+notify', NS_MOOD + '+notify']
    presence = "<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>" % (NS_CAPS, CAPS_NODE, ver)
    o = RawClient(server.port)
    liar = RawClient(server.port)
    good = RawClient(server.port)
    try:
        o.login(owner, server.password(owner), resource='owner')
        liar.login(fan, server.password(fan), resource='liar', presence=False)
        good.login(fan, server.password(fan), resource='honest', presence=False)
        liar.send(presence)
        query = take(liar, caps_query_pred(ver), 10, 'disco#info of the caps ver')
        liar.send(disco_answer(query, idents, lie))
        ping = liar.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert ping.get('type') == 'result', tostr(ping)

        good.send(presence)
        query = take(good, caps_query_pred(ver), 10, 'disco#info asked again of the second client')
        good.send(disco_answer(query, idents, honest))
        ping = good.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert ping.get('type') == 'result', tostr(ping)

        ob = '%s@%s' % (owner, HOST)
        r = o.iq('set', "<pubsub xmlns='%s'><publish node='%s'><item id='v1'>%s</item></publish></pubsub>"
                 % (NS_PUBSUB, NS_TUNE, tune('verified only')), to=ob)
        assert r.get('type') == 'result', tostr(r)
        take(good, lambda e: e.tag == q(NS_CLIENT, 'message') and is_pep_event(ob, NS_TUNE, 'v1')(e), 5,
             'notification to the client with verified caps')
        got = take_all(liar, lambda e: e.tag == q(NS_CLIENT, 'message') and is_pep_event(ob, NS_TUNE)(e), 1.0)
        assert not got, 'the client whose caps did not verify got %s' % [tostr(e) for e in got]
    finally:
        for c in (o, liar, good):
            c.close()



def test_contact_on_another_host(server, run):
    """A contact on another virtual host of this server is as local as one
    of the owner's host: its resource with tune+notify caps gets the last
    item when it comes online and the notifications after."""
    from test_muc import connect
    owner, = people(server, 'ho')
    fan = unique('hf')
    server.register(fan, OTHER, 'fresh-secret')
    o = connect(server, owner)
    k = connect(server, fan, host=OTHER)
    try:
        for a, a_jid, b, b_jid in ((o, '%s@%s' % (owner, HOST), k, '%s@%s' % (fan, OTHER)),
                                   (k, '%s@%s' % (fan, OTHER), o, '%s@%s' % (owner, HOST))):
            b.send("<presence to='%s' type='subscribe'/>" % a_jid)
            take(a, lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe', 5,
                 'subscription request')
            a.send("<presence to='%s' type='subscribed'/>" % b_jid)
            take(b, lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribed', 5,
                 'subscription approval')
    finally:
        o.close()
        k.close()

    async def go():
        c = await parleytest.login(server, owner, resource=unique('pep-'))
        try:
            await pep_published(c, NS_TUNE, tune('before'), 'h1')
            f = await pep_client(server, fan, notify=[NS_TUNE], host=OTHER)
            try:
                await pep_event(f, bare_of(c), NS_TUNE, 'h1')
                await pep_published(c, NS_TUNE, tune('after'), 'h2')
                await pep_event(f, bare_of(c), NS_TUNE, 'h2')
            finally:
                await parleytest.logout(f)
        finally:
            await parleytest.logout(c)
    run(go(), timeout=60)


# ---- a contact on another server --------------------------------------------------

def fed_subscribe(c, p, frm, to):
    """frm (a local user's RawClient c, or the raw peer's contact) asks
    for the presence of to, and to approves."""
    if frm.endswith(FED_B):
        p.send("<presence from='%s' to='%s' type='subscribe'/>" % (frm, to))
        take(c, lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe', 5,
             'subscription request from %s' % frm)
        c.send("<presence to='%s' type='subscribed'/>" % frm)
    else:
        c.send("<presence to='%s' type='subscribe'/>" % to)
        p.wait_for(lambda e: e.tag == q(NS_SERVER, 'presence') and e.get('type') == 'subscribe', 5,
                   'subscription request to %s' % to)
        p.send("<presence from='%s' to='%s' type='subscribed'/>" % (to, frm))


def fed_online(p, full, to, feats):
    """The raw peer's resource full sends to available presence with caps
    of feats (a new ver) and answers the disco#info a.test asks of it."""
    idents = [('client', 'pc', '', 'Parley test')]
    ver = caps_ver(idents, feats)
    p.send("<presence from='%s' to='%s'><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>"
           % (full, to, NS_CAPS, CAPS_NODE, ver))
    query = p.wait_for(lambda e: e.tag == q(NS_SERVER, 'iq') and e.get('type') == 'get' and
                       e.get('to') == full and e.find(q(NS_DISCO_INFO, 'query')) is not None,
                       10, 'disco#info of the caps ver')
    assert query.find(q(NS_DISCO_INFO, 'query')).get('node') == '%s#%s' % (CAPS_NODE, ver), tostr(query)
    inner = "<identity category='client' type='pc' name='Parley test'/>"
    inner += ''.join("<feature var='%s'/>" % f for f in feats)
    p.send("<iq type='result' id='%s' from='%s' to='%s'><query xmlns='%s' node='%s#%s'>%s</query></iq>"
           % (query.get('id'), full, query.get('from'), NS_DISCO_INFO, CAPS_NODE, ver, inner))
    time.sleep(0.3)
    return ver


def fed_event(to, owner, item_id):
    def pred(e):
        items = e.find('%s/%s' % (q(NS_EVENT, 'event'), q(NS_EVENT, 'items')))
        return (e.tag == q(NS_SERVER, 'message') and e.get('to') == to and e.get('from') == owner and
                items is not None and items.get('node') == NS_TUNE and any(x.get('id') == item_id for x in items))
    return pred


def fed_publish(c, owner, item_id, title):
    r = c.iq('set', "<pubsub xmlns='%s'><publish node='%s'><item id='%s'>%s</item></publish></pubsub>"
             % (NS_PUBSUB, NS_TUNE, item_id, tune(title)), to=owner)
    assert r.get('type') == 'result', tostr(r)


def test_contact_on_another_server(fed_peer):
    """XEP-0163 §4.3.3 across federation: romeo@b2.test shares presence
    with alice; the available presence of his resource, with caps listing
    tune+notify, makes a.test ask that resource for the ver (disco#info
    from a.test) and then notify it of alice's tune; a second resource
    announcing the same (now cached) ver gets the last item with <delay/>
    at once; a resource that went unavailable is notified no more."""
    a, p = fed_peer
    romeo = 'romeo@' + FED_B
    alice = 'alice@' + FED_A
    feats = [NS_CAPS, NS_DISCO_INFO, NS_TUNE + '+notify', 'urn:example:parley-test:' + unique('f')]
    c = RawClient(a.port, host=FED_A)
    try:
        c.login('alice', 'alice-secret', resource='phone')
        fed_subscribe(c, p, alice, romeo)
        fed_subscribe(c, p, romeo, alice)
        ver = fed_online(p, romeo + '/orchard', alice, feats)
        fed_publish(c, alice, 't1', 'federated')
        e = p.wait_for(fed_event(romeo + '/orchard', alice, 't1'), 5, 'notification to romeo/orchard')
        assert 'federated' in tostr(e), tostr(e)
        # §4.3.3 (2.): a resource whose presence comes after the publish
        p.send("<presence from='%s/garden' to='%s'><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>"
               % (romeo, alice, NS_CAPS, CAPS_NODE, ver))
        e = p.wait_for(fed_event(romeo + '/garden', alice, 't1'), 5, 'last item to romeo/garden')
        assert e.find(q('urn:xmpp:delay', 'delay')) is not None, tostr(e)
        # a room occupant's presence (XEP-0045) with caps is no contact's: not asked
        room_ver = caps_ver([('client', 'pc', '', 'Parley test')], feats + ['urn:example:parley-test:room'])
        p.send("<presence from='room@%s/romeo' to='%s/phone'><x xmlns='%s#user'/>"
               "<c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>"
               % (FED_B, alice, 'http://jabber.org/protocol/muc', NS_CAPS, CAPS_NODE, room_ver))
        with pytest.raises(TimeoutError):
            p.wait_for(lambda e: e.tag == q(NS_SERVER, 'iq') and e.get('type') == 'get', 1.0,
                       'disco#info to a room occupant')
        # unavailable: forgotten
        p.send("<presence from='%s/orchard' to='%s' type='unavailable'/>" % (romeo, alice))
        time.sleep(0.3)
        fed_publish(c, alice, 't2', 'later')
        seen = []
        p.wait_for(lambda e: seen.append(e) or fed_event(romeo + '/garden', alice, 't2')(e), 5,
                   'notification to romeo/garden')
        time.sleep(0.5)
        while p.pending:
            seen.append(p.pending.popleft())
        assert not any(x is not None and fed_event(romeo + '/orchard', alice, 't2')(x) for x in seen), \
            [tostr(x) for x in seen]
    finally:
        c.close()


def test_new_subscriber_on_another_server(fed_peer):
    """XEP-0163 §4.3.4 across federation: juliet@b2.test, whose presence
    alice receives (subscription 'to') with tune+notify caps, gets nothing
    of alice's tune; once alice approves juliet's subscription, juliet's
    resource gets the last item."""
    a, p = fed_peer
    juliet = 'juliet@' + FED_B
    alice = 'alice@' + FED_A
    feats = [NS_CAPS, NS_DISCO_INFO, NS_TUNE + '+notify', 'urn:example:parley-test:' + unique('f')]
    c = RawClient(a.port, host=FED_A)
    try:
        c.login('alice', 'alice-secret', resource='laptop')
        fed_publish(c, alice, 'j1', 'for new subscribers')
        fed_subscribe(c, p, alice, juliet)
        fed_online(p, juliet + '/balcony', alice, feats)
        seen = []
        with pytest.raises(TimeoutError):
            p.wait_for(lambda e: seen.append(e) or fed_event(juliet + '/balcony', alice, 'j1')(e), 1.0,
                       'notification before the subscription')
        fed_subscribe(c, p, juliet, alice)
        e = p.wait_for(fed_event(juliet + '/balcony', alice, 'j1'), 5, 'last item to juliet/balcony')
        assert 'for new subscribers' in tostr(e) and e.find(q('urn:xmpp:delay', 'delay')) is not None, tostr(e)
    finally:
        c.close()
