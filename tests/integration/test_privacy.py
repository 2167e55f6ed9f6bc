"""Privacy lists (XEP-0016): lists are created, read, replaced and removed;
the default and active lists follow the XEP's rules (item-not-found,
bad-request, conflict when a list another resource uses is removed or the
default changed under it); every change of a list is pushed to every
resource; what a list denies is not delivered (messages and iq bounced with
service-unavailable, presence dropped) and what the user sends to a denied
peer is refused with not-acceptable; group and subscription rules follow
the roster; the default list applies to a new session.  The first tests
use slixmpp clients (with raw jabber:iq:privacy payloads), the presence
ones the raw-socket client of test_presence.  Every test registers fresh
users."""
import asyncio

from parleytest import HOST, NS_CLIENT, iq, login, logout, q, stanza_error, tostr
from test_presence import (bare, expect, expect_none, make_mutual, new_user, online,
                           presence, push, roster_items, send_sub)

NS_PRIVACY = 'jabber:iq:privacy'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'


# ---- helpers ----------------------------------------------------------------

def item(order, action, typ=None, value=None, stanzas=()):
    attrs = "order='%d' action='%s'" % (order, action)
    if typ is not None:
        attrs += " type='%s' value='%s'" % (typ, value)
    return '<item %s>%s</item>' % (attrs, ''.join('<%s/>' % s for s in stanzas))


def query(inner=''):
    return "<query xmlns='%s'>%s</query>" % (NS_PRIVACY, inner)


def list_xml(name, *items):
    return "<list name='%s'>%s</list>" % (name, ''.join(items))


async def pset(c, inner):
    return await iq(c, 'set', None, query(inner))


async def pget(c, inner=''):
    return await iq(c, 'get', None, query(inner))


def ok(r):
    assert r.get('type') == 'result', tostr(r)
    return r


def names(r):
    qq = r.find(q(NS_CLIENT, 'iq') + '/' + q(NS_PRIVACY, 'query'))
    if qq is None:
        qq = r.find(q(NS_PRIVACY, 'query'))
    active = qq.find(q(NS_PRIVACY, 'active'))
    default = qq.find(q(NS_PRIVACY, 'default'))
    return (active.get('name') if active is not None else None,
            default.get('name') if default is not None else None,
            sorted(li.get('name') for li in qq.findall(q(NS_PRIVACY, 'list'))))


def collect(c, kind):
    """Queue every stanza of kind ('message', 'message_error', 'privacy push')
    the slixmpp client c receives."""
    queue = asyncio.Queue()
    if kind == 'privacy push':
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        def on_push(stanza):
            if stanza['type'] != 'set':
                return
            queue.put_nowait(stanza.xml)
            # answer it, as a client should
            reply = c.Iq()
            reply['type'] = 'result'
            reply['id'] = stanza['id']
            reply['to'] = stanza['from']
            reply.send()
        c.register_handler(Callback('privacy push', MatchXPath(
            "{%s}iq/{%s}query" % (NS_CLIENT, NS_PRIVACY)), on_push))
    else:
        c.add_event_handler(kind, lambda m: queue.put_nowait(m))
    return queue


async def none_within(queue, seconds=1.0):
    try:
        got = await asyncio.wait_for(queue.get(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError('unexpected: %s' % got)


async def body_from(queue, body, timeout=5):
    while True:
        m = await asyncio.wait_for(queue.get(), timeout)
        if m['body'] == body:
            return m


def send(c, to, body):
    c.send_message(mto=to, mbody=body, mtype='chat')


# ---- management -------------------------------------------------------------

def test_feature_and_list_management(server, run):
    u = new_user(server, 'pm')
    o = new_user(server, 'po')

    async def go():
        c = await login(server, u)
        try:
            r = await iq(c, 'get', HOST, "<query xmlns='%s'/>" % NS_DISCO_INFO)
            assert NS_PRIVACY in {f.get('var') for f in r.iter(q(NS_DISCO_INFO, 'feature'))}
            assert names(ok(await pget(c))) == (None, None, [])
            ok(await pset(c, list_xml('public',
                                      item(20, 'allow'),
                                      item(5, 'deny', 'jid', 'Tybalt@Example.COM/x',
                                           ('message', 'presence-in')),
                                      item(10, 'deny', 'subscription', 'none',
                                           ('presence-out',)),
                                      item(7, 'allow', 'group', 'Family', ('iq',)))))
            ok(await pset(c, list_xml('invisible', item(1, 'deny', stanzas=('presence-out',)))))
            assert names(ok(await pget(c))) == (None, None, ['invisible', 'public'])
            # One list: items in order, JIDs prepared, children kept.
            r = ok(await pget(c, "<list name='public'/>"))
            lst = r.find('.//' + q(NS_PRIVACY, 'list'))
            got = [(i.get('order'), i.get('type'), i.get('value'), i.get('action'),
                    sorted(x.tag.split('}')[1] for x in i))
                   for i in lst.findall(q(NS_PRIVACY, 'item'))]
            assert got == [('5', 'jid', 'tybalt@example.com/x', 'deny',
                            ['message', 'presence-in']),
                           ('7', 'group', 'Family', 'allow', ['iq']),
                           ('10', 'subscription', 'none', 'deny', ['presence-out']),
                           ('20', None, None, 'allow', [])], got
            # Errors.
            r = await pget(c, "<list name='public'/><list name='invisible'/>")
            assert stanza_error(r) == 'bad-request', tostr(r)
            r = await pget(c, "<list name='nosuch'/>")
            assert stanza_error(r) == 'item-not-found', tostr(r)
            r = await pset(c, "<active name='nosuch'/>")
            assert stanza_error(r) == 'item-not-found', tostr(r)
            r = await pset(c, "<default name='nosuch'/>")
            assert stanza_error(r) == 'item-not-found', tostr(r)
            r = await pset(c, list_xml('a', item(1, 'allow')) + list_xml('b', item(1, 'deny')))
            assert stanza_error(r) == 'bad-request', tostr(r)
            r = await pset(c, list_xml('dup', item(1, 'allow'), item(1, 'deny')))
            assert stanza_error(r) == 'bad-request', tostr(r)
            r = await pset(c, list_xml('bad', item(1, 'maybe')))
            assert stanza_error(r) == 'bad-request', tostr(r)
            r = await pset(c, list_xml('bad', item(1, 'deny', 'subscription', 'sometimes')))
            assert stanza_error(r) == 'bad-request', tostr(r)
            r = await pset(c, list_xml('bad', item(1, 'deny', 'colour', 'red')))
            assert stanza_error(r) == 'bad-request', tostr(r)
            r = await pset(c, list_xml('nosuch'))
            assert stanza_error(r) == 'item-not-found', tostr(r)
            assert names(ok(await pget(c))) == (None, None, ['invisible', 'public'])
            # Active and default.
            ok(await pset(c, "<active name='invisible'/>"))
            ok(await pset(c, "<default name='public'/>"))
            assert names(ok(await pget(c))) == ('invisible', 'public', ['invisible', 'public'])
            ok(await pset(c, "<active/>"))
            assert names(ok(await pget(c))) == (None, 'public', ['invisible', 'public'])
            # Replace a list; remove the other (and the default one).
            ok(await pset(c, list_xml('public', item(3, 'deny', 'jid', 'x.example'))))
            r = ok(await pget(c, "<list name='public'/>"))
            assert len(r.findall('.//' + q(NS_PRIVACY, 'item'))) == 1, tostr(r)
            ok(await pset(c, list_xml('invisible')))
            ok(await pset(c, list_xml('public')))
            assert names(ok(await pget(c))) == (None, None, [])
            # Someone else's lists are not ours.
            r = await iq(c, 'get', bare(o), query())
            assert stanza_error(r) == 'forbidden', tostr(r)
        finally:
            await logout(c)
    run(go())


def test_push_and_conflicts(server, run):
    u = new_user(server, 'pc')

    async def go():
        c1 = await login(server, u, resource='one')
        c2 = await login(server, u, resource='two')
        try:
            p1, p2 = collect(c1, 'privacy push'), collect(c2, 'privacy push')
            ok(await pset(c1, list_xml('d', item(1, 'allow'))))
            ok(await pset(c1, list_xml('e', item(1, 'deny', stanzas=('message',)))))
            for p in (p1, p2):
                for want in ('d', 'e'):
                    e = await asyncio.wait_for(p.get(), 5)
                    assert e.find('.//' + q(NS_PRIVACY, 'list')).get('name') == want, tostr(e)
            ok(await pset(c1, "<default name='d'/>"))
            # two has no active list: the default is in use by it.
            r = await pset(c1, "<default name='e'/>")
            assert stanza_error(r) == 'conflict', tostr(r)
            r = await pset(c1, "<default/>")
            assert stanza_error(r) == 'conflict', tostr(r)
            r = await pset(c1, list_xml('d'))
            assert stanza_error(r) == 'conflict', tostr(r)
            # Editing a list in use is allowed (and pushed).
            ok(await pset(c1, list_xml('d', item(2, 'allow'))))
            for p in (p1, p2):
                e = await asyncio.wait_for(p.get(), 5)
                assert e.find('.//' + q(NS_PRIVACY, 'list')).get('name') == 'd', tostr(e)
            # two makes e its active list: e cannot be removed by one, but the
            # default can change now.
            ok(await pset(c2, "<active name='e'/>"))
            r = await pset(c1, list_xml('e'))
            assert stanza_error(r) == 'conflict', tostr(r)
            ok(await pset(c1, "<default name='e'/>"))
            assert names(ok(await pget(c1))) == (None, 'e', ['d', 'e'])
            assert names(ok(await pget(c2))) == ('e', 'e', ['d', 'e'])
            # two declines its active list: e is the default two uses; one can
            # still remove d (nobody uses it).
            ok(await pset(c2, "<active/>"))
            ok(await pset(c1, list_xml('d')))
            for p in (p1, p2):
                e = await asyncio.wait_for(p.get(), 5)
                assert e.find('.//' + q(NS_PRIVACY, 'list')).get('name') == 'd', tostr(e)
            assert names(ok(await pget(c2))) == (None, 'e', ['e'])
        finally:
            await logout(c1, c2)
    run(go())


# ---- enforcement ---------------------------------------------------------------

def test_messages_denied_and_allowed_in_order(server, run):
    au, bu, cu = new_user(server, 'pa'), new_user(server, 'pb'), new_user(server, 'pc')

    async def go():
        a = await login(server, au)
        b = await login(server, bu)
        cc = await login(server, cu)
        try:
            am, berr, cerr = collect(a, 'message'), collect(b, 'message_error'), \
                collect(cc, 'message_error')
            # b allowed first, then every other message denied.
            ok(await pset(a, list_xml('only-b', item(1, 'allow', 'jid', bare(bu)),
                                      item(2, 'deny', stanzas=('message',)))))
            ok(await pset(a, "<active name='only-b'/>"))
            send(b, bare(au), 'from b')
            await body_from(am, 'from b')
            send(cc, bare(au), 'from c')
            e = await asyncio.wait_for(cerr.get(), 5)
            assert e['error']['condition'] == 'service-unavailable', e
            await none_within(am)
            # to the full JID too
            send(cc, str(a.boundjid), 'from c again')
            e = await asyncio.wait_for(cerr.get(), 5)
            assert e['error']['condition'] == 'service-unavailable', e
            await none_within(am)
            # iqs are not covered by a message rule
            r = await iq(cc, 'get', str(a.boundjid), "<ping xmlns='urn:xmpp:ping'/>")
            assert r.get('type') in ('result', 'error') and stanza_error(r) != \
                'service-unavailable', tostr(r)
            # Declining the active list lets c through again.
            ok(await pset(a, "<active/>"))
            send(cc, bare(au), 'from c at last')
            await body_from(am, 'from c at last')
            await none_within(berr, 0.2)
        finally:
            await logout(a, b, cc)
    run(go())


def test_iq_denied_and_outbound_refused(server, run):
    au, bu = new_user(server, 'pi'), new_user(server, 'pj')

    async def go():
        a = await login(server, au)
        b = await login(server, bu)
        try:
            am = collect(a, 'message')
            aerr = collect(a, 'message_error')
            ok(await pset(a, list_xml('no-iq', item(1, 'deny', 'jid', bare(bu), ('iq',)))))
            ok(await pset(a, "<active name='no-iq'/>"))
            r = await iq(b, 'get', str(a.boundjid), "<ping xmlns='urn:xmpp:ping'/>")
            assert stanza_error(r) == 'service-unavailable', tostr(r)
            # the vCard the server answers for a's bare JID: the default
            # list applies there (none yet), so it is answered
            r = await iq(b, 'get', bare(au), "<vCard xmlns='vcard-temp'/>")
            assert stanza_error(r) != 'service-unavailable', tostr(r)
            ok(await pset(a, "<default name='no-iq'/>"))
            r = await iq(b, 'get', bare(au), "<vCard xmlns='vcard-temp'/>")
            assert stanza_error(r) == 'service-unavailable', tostr(r)
            # messages still flow both ways (the rule is about iq only)
            send(b, bare(au), 'hello a')
            await body_from(am, 'hello a')
            # a rule for every stanza: what a sends to b is refused
            ok(await pset(a, list_xml('all', item(1, 'deny', 'jid', bare(bu)))))
            ok(await pset(a, "<active name='all'/>"))
            send(a, bare(bu), 'to a blocked peer')
            e = await asyncio.wait_for(aerr.get(), 5)
            assert e['error']['condition'] == 'not-acceptable', e
        finally:
            await logout(a, b)
    run(go())


def test_domain_resource_item_matches_a_user_with_that_resource(server, run):
    """XEP-0016 §2.1: a JID item 'domain/resource' matches every peer of that
    domain with that resource, user@domain/resource included."""
    au, bu = new_user(server, 'pr'), new_user(server, 'ps')

    async def go():
        a = await login(server, au)
        b1 = await login(server, bu, resource='evil')
        b2 = await login(server, bu, resource='good')
        try:
            am, berr = collect(a, 'message'), collect(b1, 'message_error')
            ok(await pset(a, list_xml('dr', item(1, 'deny', 'jid', '%s/evil' % HOST,
                                                 ('message',)))))
            ok(await pset(a, "<active name='dr'/>"))
            send(b1, bare(au), 'from the denied resource')
            e = await asyncio.wait_for(berr.get(), 5)
            assert e['error']['condition'] == 'service-unavailable', e
            await none_within(am)
            send(b2, bare(au), 'from another resource')
            await body_from(am, 'from another resource')
        finally:
            await logout(a, b1, b2)
    run(go())


def test_default_list_applies_to_new_session(server, run):
    au, bu = new_user(server, 'pn'), new_user(server, 'pq')

    async def go():
        a = await login(server, au)
        ok(await pset(a, list_xml('block-b', item(1, 'deny', 'jid', bare(bu), ('message',)))))
        ok(await pset(a, "<default name='block-b'/>"))
        await logout(a)
        a = await login(server, au)
        b = await login(server, bu)
        try:
            am, berr = collect(a, 'message'), collect(b, 'message_error')
            assert names(ok(await pget(a))) == (None, 'block-b', ['block-b'])
            send(b, bare(au), 'denied by the default list')
            e = await asyncio.wait_for(berr.get(), 5)
            assert e['error']['condition'] == 'service-unavailable', e
            await none_within(am)
        finally:
            await logout(a, b)
    run(go())


def _set(c, inner):
    r = c.iq('set', query(inner))
    assert r.get('type') == 'result', tostr(r)


def test_presence_in_and_out_by_subscription_and_group(server):
    au, bu = new_user(server, 'pp'), new_user(server, 'pr')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        # presence-out to contacts with subscription both: b sees nothing of a.
        _set(a, list_xml('hide', item(1, 'deny', 'subscription', 'both', ('presence-out',))))
        _set(a, "<active name='hide'/>")
        a.send('<presence><show>away</show></presence>')
        expect_none(b, presence(None, a.jid), 'presence a hides from b')
        # a still sees b (presence-in is not covered)
        b.send('<presence><show>dnd</show></presence>')
        expect(a, presence(None, b.jid), 'presence of b')
        _set(a, "<active/>")
        a.send('<presence><show>chat</show></presence>')
        expect(b, presence(None, a.jid), 'presence of a again')
        # presence-in from the group b is in.
        a.send("<iq type='set' id='grp'><query xmlns='jabber:iq:roster'><item jid='%s'>"
               "<group>Rivals</group></item></query></iq>" % bare(bu))
        a.wait_iq('grp')
        _set(a, list_xml('quiet', item(1, 'deny', 'group', 'Rivals', ('presence-in',))))
        _set(a, "<active name='quiet'/>")
        b.send('<presence><show>xa</show></presence>')
        expect_none(a, presence(None, b.jid), 'presence from the Rivals group')
        # a's own presence still reaches b
        a.send('<presence/>')
        expect(b, presence(None, a.jid), 'presence of a')
    finally:
        a.close()
        b.close()


def test_presence_out_to_another_local_host(server):
    """The broadcast of a user of one host to a contact of another local
    host goes by the sender's list too."""
    from parleytest import OTHER
    au = new_user(server, 'px')
    ou = new_user(server, 'po', host=OTHER)
    a = online(server, au)
    o = online(server, ou, host=OTHER)
    ojid = '%s@%s' % (ou, OTHER)
    try:
        a.send("<presence to='%s' type='subscribe'/>" % ojid)
        expect(o, presence('subscribe', bare(au)), 'subscribe')
        o.send("<presence to='%s' type='subscribed'/>" % bare(au))
        expect(a, presence(None, o.jid), 'presence of the other host\'s user')
        a.send('<presence><show>away</show></presence>')
        expect_none(o, presence(None, a.jid), 'presence without a subscription', wait=0.5)
        o.send("<presence to='%s' type='subscribe'/>" % bare(au))
        expect(a, presence('subscribe', ojid), 'subscribe from the other host')
        a.send("<presence to='%s' type='subscribed'/>" % ojid)
        expect(o, presence(None, a.jid), 'presence of a')
        _set(a, list_xml('hide', item(1, 'deny', 'jid', ojid, ('presence-out',))))
        _set(a, "<active name='hide'/>")
        a.send('<presence><show>dnd</show></presence>')
        expect_none(o, presence(None, a.jid), 'presence a hides from the other host')
        _set(a, "<active/>")
        a.send('<presence><show>chat</show></presence>')
        expect(o, presence(None, a.jid), 'presence of a again')
    finally:
        a.close()
        o.close()


def test_list_that_starts_denying_presence_out_sends_unavailable(server):
    """XEP-0016 presence-out, as XEP-0191 §3.3 for a block: once the list a
    session applies denies them presence-out, a subscribed contact and a
    JID that only got directed presence from the session are sent
    unavailable from it."""
    au, bu, cu = new_user(server, 'ua'), new_user(server, 'ub'), new_user(server, 'uc')
    a, b, c = online(server, au), online(server, bu), online(server, cu)
    try:
        make_mutual(a, au, b, bu)
        a.send("<presence to='%s'><status>just you</status></presence>" % c.jid)
        expect(c, presence(None, a.jid, status='just you'), 'the directed presence')
        _set(a, list_xml('hide', item(1, 'deny', 'jid', bare(bu), ('presence-out',)),
                         item(2, 'deny', 'jid', bare(cu), ('presence-out',))))
        _set(a, "<active name='hide'/>")
        expect(b, presence('unavailable', a.jid), 'unavailable to the contact')
        expect(c, presence('unavailable', a.jid), 'unavailable to the directed-presence target')
    finally:
        a.close()
        b.close()
        c.close()


def test_subscription_stanzas_from_a_denied_peer(server):
    """A list denying a peer (for every stanza) stops its subscription
    stanzas before they change the roster (XEP-0016: the list comes before
    the subscription handling), online or offline alike."""
    au, bu, cu = new_user(server, 'sa'), new_user(server, 'sb'), new_user(server, 'sc')
    a, c = online(server, au), online(server, cu)
    make_mutual(a, au, c, cu)
    _set(a, list_xml('deny', item(1, 'deny', 'jid', bare(bu)), item(2, 'deny', 'jid', bare(cu))))
    _set(a, "<default name='deny'/>")
    b = online(server, bu)
    try:
        send_sub(b, au, 'subscribe')
        send_sub(c, au, 'unsubscribe')
        expect_none(a, presence('subscribe', bare(bu)), 'subscribe from a denied peer')
        expect_none(a, presence('unsubscribe', bare(cu)), 'unsubscribe from a denied peer')
        expect_none(a, push(bare(cu)), 'roster push for a denied peer', wait=0.2)
        items = roster_items(a)
        assert bare(bu) not in items, tostr(items[bare(bu)])
        assert items[bare(cu)].get('subscription') == 'both', tostr(items[bare(cu)])
        a.close()
        # The user has no session now: the stored default list decides.
        send_sub(b, au, 'subscribe')
        b.iq('get', "<query xmlns='jabber:iq:roster'/>")  # the stanza has been handled
        a = online(server, au)
        expect_none(a, presence('subscribe', bare(bu)), 'request of a denied peer at login')
        assert bare(bu) not in roster_items(a)
    finally:
        a.close()
        b.close()
        c.close()


def test_subscription_request_denied_by_the_active_list_only(server):
    """The active list keeps a request from its session; the request is kept
    (the default list does not deny it) for a session without that list."""
    au, bu = new_user(server, 'sd'), new_user(server, 'se')
    a, b = online(server, au), online(server, bu)
    try:
        _set(a, list_xml('deny', item(1, 'deny', 'jid', bare(bu))))
        _set(a, "<active name='deny'/>")
        send_sub(b, au, 'subscribe')
        expect_none(a, presence('subscribe', bare(bu)), 'request denied by the active list')
        a.close()
        a = online(server, au)
        expect(a, presence('subscribe', bare(bu)), 'kept request in a session without the list')
    finally:
        a.close()
        b.close()


def test_default_list_judges_iq_for_an_offline_user(server):
    """XEP-0016: with no session the default list applies, to the iqs the
    server answers on the user's behalf too."""
    au, bu, cu = new_user(server, 'sf'), new_user(server, 'sg'), new_user(server, 'sh')
    a = online(server, au)
    r = a.iq('set', "<vCard xmlns='vcard-temp'><FN>Secret Name</FN></vCard>")
    assert r.get('type') == 'result', tostr(r)
    _set(a, list_xml('no-iq', item(1, 'deny', 'jid', bare(bu), ('iq',))))
    _set(a, "<default name='no-iq'/>")
    a.close()
    b, c = online(server, bu), online(server, cu)
    try:
        r = b.iq('get', "<vCard xmlns='vcard-temp'/>", to=bare(au))
        assert stanza_error(r) == 'service-unavailable', tostr(r)
        r = c.iq('get', "<vCard xmlns='vcard-temp'/>", to=bare(au))
        assert r.get('type') == 'result' and 'Secret Name' in tostr(r), tostr(r)
    finally:
        b.close()
        c.close()
