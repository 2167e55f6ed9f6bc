"""Presence subscriptions (RFC 6121 §3) and presence broadcast (§4):
subscribe and approve with both parties online or one offline,
pre-approval, unsubscribe and unsubscribed, probes answered to
subscribers only, directed presence, roster pushes on every change, and
unavailable presence when a connection drops or the account is removed.
Every test registers
fresh users, so the tests do not depend on each other."""
import re

import pytest

import parleytest
from parleytest import (FED_A, FED_B, HOST, NS_CLIENT, NS_REGISTER, NS_SERVER, RawClient, RawComponent, q,
                        stanza_error, tostr, unique)

NS_ROSTER = 'jabber:iq:roster'
NS_COMMANDS = 'http://jabber.org/protocol/commands'
NS_NICK = 'http://jabber.org/protocol/nick'
XML_LANG = '{http://www.w3.org/XML/1998/namespace}lang'


# ---- helpers ----------------------------------------------------------------

def new_user(server, prefix='p', host=HOST):
    name = unique(prefix)
    server.register(name, host, 'pw-' + name)
    return name


def online(server, user, resource=None, host=HOST):
    """Log user in as an interested, available resource."""
    c = RawClient(server.port, host=host)
    c.login(user, server.password(user, host), resource=resource or unique('r'), presence=False)
    c.claimed = set()
    r = c.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
    assert r.get('type') == 'result', tostr(r)
    c.roster = r
    c.send('<presence/>')
    return c


def bare(user):
    return '%s@%s' % (user, HOST)


def expect(c, pred, what, timeout=5):
    """The first element (already read or still to come) that matches pred
    and was not claimed by an earlier expect."""
    for e in c.received:
        if id(e) not in c.claimed and pred(e):
            c.claimed.add(id(e))
            return e
    e = c.wait_for(lambda e: id(e) not in c.claimed and pred(e), timeout=timeout, what=what)
    c.claimed.add(id(e))
    return e


def expect_none(c, pred, what, wait=1.0):
    for e in c.received:
        if id(e) not in c.claimed and pred(e):
            raise AssertionError('unexpected %s: %s' % (what, tostr(e)))
    try:
        e = c.wait_for(lambda e: id(e) not in c.claimed and pred(e), timeout=wait, what=what)
    except TimeoutError:
        return
    raise AssertionError('unexpected %s: %s' % (what, tostr(e)))


def presence(typ=None, frm=None, status=None, ns=NS_CLIENT):
    """Predicate: a presence of type typ (None: available) from frm, with
    status when given; ns 'jabber:server' for what a raw s2s peer reads."""
    def match(e):
        if e.tag != q(ns, 'presence') or e.get('type') != typ:
            return False
        if status is not None and e.findtext(q(ns, 'status')) != status:
            return False
        return frm is None or e.get('from') == frm
    return match


def push(jid):
    def match(e):
        if e.tag != q(NS_CLIENT, 'iq') or e.get('type') != 'set':
            return False
        it = e.find('%s/%s' % (q(NS_ROSTER, 'query'), q(NS_ROSTER, 'item')))
        return it is not None and it.get('jid') == jid
    return match


def expect_push(c, jid, subscription, ask=None, approved=None):
    e = expect(c, push(jid), 'roster push for %s' % jid)
    it = e.find('%s/%s' % (q(NS_ROSTER, 'query'), q(NS_ROSTER, 'item')))
    assert it.get('subscription') == subscription, tostr(e)
    assert it.get('ask') == ask, tostr(e)
    if approved is not None:
        assert it.get('approved') == approved, tostr(e)
    # Answer it, as a client should.
    c.send("<iq type='result' id='%s'/>" % e.get('id'))
    return it


def assert_order(c, *elements):
    """The elements (read by c) came in the order given."""
    at = [next(i for i, e in enumerate(c.received) if e is x) for x in elements]
    assert at == sorted(at), [tostr(e) for e in c.received]


def roster_items(c):
    r = c.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
    assert r.get('type') == 'result', tostr(r)
    query = r.find(q(NS_ROSTER, 'query'))
    return {i.get('jid'): i for i in query.findall(q(NS_ROSTER, 'item'))}


def send_sub(c, to_user, typ):
    c.send("<presence to='%s' type='%s'/>" % (bare(to_user), typ))


def make_mutual(a, au, b, bu):
    """a and b subscribe to each other (both online); checks every step."""
    send_sub(a, bu, 'subscribe')
    expect_push(a, bare(bu), 'none', ask='subscribe')
    expect(b, presence('subscribe', bare(au)), 'subscribe from %s' % au)
    send_sub(b, au, 'subscribed')
    expect_push(b, bare(au), 'from')
    expect(a, presence('subscribed', bare(bu)), 'subscribed from %s' % bu)
    expect_push(a, bare(bu), 'to')
    expect(a, presence(None, b.jid), 'presence of %s' % bu)
    send_sub(b, au, 'subscribe')
    expect_push(b, bare(au), 'from', ask='subscribe')
    expect(a, presence('subscribe', bare(bu)), 'subscribe from %s' % bu)
    send_sub(a, bu, 'subscribed')
    expect_push(a, bare(bu), 'both')
    expect(b, presence('subscribed', bare(au)), 'subscribed from %s' % au)
    expect_push(b, bare(au), 'both')
    expect(b, presence(None, a.jid), 'presence of %s' % au)


# ---- tests ------------------------------------------------------------------

def test_repeated_request_delivered_once(server):
    """A subscription request sent again while the first still waits for
    an answer is not delivered again (RFC 6121 Appendix A.3.1); the
    answer to it still works."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        send_sub(a, bu, 'subscribe')
        expect(b, presence('subscribe', bare(au)), 'the request')
        send_sub(a, bu, 'subscribe')
        send_sub(a, bu, 'subscribe')
        expect_none(b, presence('subscribe', bare(au)), 'the request again')
        send_sub(b, au, 'subscribed')
        expect(a, presence('subscribed', bare(bu)), 'the approval')
    finally:
        a.close()
        b.close()


def test_subscribe_both_online_mutual_and_online_offline(server):
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        assert roster_items(a)[bare(bu)].get('subscription') == 'both'
        assert roster_items(b)[bare(au)].get('subscription') == 'both'

        # A presence change reaches the contact.
        a.send('<presence><show>away</show></presence>')
        e = expect(b, presence(None, a.jid), 'away presence')
        assert e.findtext(q(NS_CLIENT, 'show')) == 'away', tostr(e)

        # The connection drops: the contact sees unavailable.
        a_jid = a.jid
        a.sock.close()
        a.closed = True
        expect(b, presence('unavailable', a_jid), 'unavailable from %s' % au)

        # Back online: the contact sees it, and the probe brings b's presence.
        a2 = online(server, au)
        try:
            expect(b, presence(None, a2.jid), 'presence of %s again' % au)
            expect(a2, presence(None, b.jid), 'presence of %s (probe answer)' % bu)
        finally:
            a2.close()
    finally:
        a.close()
        b.close()


def test_presence_after_an_approval_comes_after_it(server):
    """The presence a contact sends right behind its approval reaches
    the requester after the approval and its roster push (RFC 6120 §10.1),
    although the approval waits for the requester's roster write and the
    presence does not need it."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        send_sub(a, bu, 'subscribe')
        expect_push(a, bare(bu), 'none', ask='subscribe')
        expect(b, presence('subscribe', bare(au)), 'subscribe')
        send_sub(b, au, 'subscribed')   # b's presence follows it (§3.1.5)
        avail = expect(a, presence(None, b.jid), 'presence of %s' % bu)
        pushed = expect(a, push(bare(bu)), 'roster push for %s' % bu)
        approval = expect(a, presence('subscribed', bare(bu)), 'subscribed')
        assert_order(a, pushed, approval, avail)
    finally:
        a.close()
        b.close()


def test_presence_from_another_server_after_an_approval_comes_after_it(fed_peer):
    """The same with a contact on another server that sends its approval
    and its available presence in one write."""
    srv, p = fed_peer
    au = new_user(srv, 'a', host=FED_A)
    alice, romeo = '%s@%s' % (au, FED_A), '%s@%s' % (unique('romeo'), FED_B)
    a = online(srv, au, host=FED_A)
    try:
        a.send("<presence to='%s' type='subscribe'/>" % romeo)
        p.wait_for(lambda e: e.tag == q(NS_SERVER, 'presence') and e.get('type') == 'subscribe' and
                   e.get('to') == romeo, what='subscribe to %s' % romeo)
        expect_push(a, romeo, 'none', ask='subscribe')
        p.send("<presence from='%s' to='%s' type='subscribed'/><presence from='%s/orchard' to='%s'/>"
               % (romeo, alice, romeo, alice))
        avail = expect(a, presence(None, romeo + '/orchard'), 'presence of %s' % romeo)
        pushed = expect(a, push(romeo), 'roster push for %s' % romeo)
        approval = expect(a, presence('subscribed', romeo), 'subscribed')
        assert_order(a, pushed, approval, avail)
        assert pushed.find('%s/%s' % (q(NS_ROSTER, 'query'), q(NS_ROSTER, 'item'))).get('subscription') == 'to'
    finally:
        a.close()


def test_request_to_offline_user_waits_for_login(server):
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a = online(server, au)
    try:
        send_sub(a, bu, 'subscribe')
        expect_push(a, bare(bu), 'none', ask='subscribe')
        b = online(server, bu)
        try:
            expect(b, presence('subscribe', bare(au)), 'stored subscribe request')
            # The pending request is not a roster item for the client.
            assert bare(au) not in roster_items(b)
            send_sub(b, au, 'subscribed')
            expect_push(b, bare(au), 'from')
            expect(a, presence('subscribed', bare(bu)), 'subscribed')
            expect_push(a, bare(bu), 'to')
            expect(a, presence(None, b.jid), 'presence of %s' % bu)
        finally:
            b.close()
        # b's connection ended: a sees unavailable.
        expect(a, presence('unavailable', b.jid), 'unavailable from %s' % bu)
    finally:
        a.close()


def said(e):
    """What a subscription request says: its statuses by xml:lang, and its nick."""
    return ({s.get(XML_LANG): s.text for s in e.findall(q(NS_CLIENT, 'status'))},
            e.findtext(q(NS_NICK, 'nick')))


def send_request(c, to_user, *statuses, nick=None):
    """A subscribe with <status/>s ((lang or None, text) each) and a nick."""
    body = ''.join("<status%s>%s</status>" % (" xml:lang='%s'" % lang if lang else '', text)
                   for lang, text in statuses)
    if nick is not None:
        body += "<nick xmlns='%s'>%s</nick>" % (NS_NICK, nick)
    c.send("<presence to='%s' type='subscribe'>%s</presence>" % (bare(to_user), body))


def test_waiting_request_keeps_its_status_and_nick(server):
    """A request to an offline user comes at the user's login with its
    <status/>s (each xml:lang) and XEP-0172 <nick/>; a later request from
    the same contact replaces them; an answer clears them."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a = online(server, au)
    try:
        send_request(a, bu, (None, "Hi, I'm Alice from sales"), ('de', 'Hallo, ich bin Alice'),
                     nick='Alice')
        expect_push(a, bare(bu), 'none', ask='subscribe')
        roster_items(a)    # answered once bob's roster has the request too
        b = online(server, bu)
        try:
            e = expect(b, presence('subscribe', bare(au)), 'stored subscribe request')
            assert said(e) == ({None: "Hi, I'm Alice from sales", 'de': 'Hallo, ich bin Alice'},
                               'Alice'), tostr(e)
        finally:
            b.close()
        send_request(a, bu, (None, 'second try'))
        roster_items(a)
        b = online(server, bu)
        try:
            e = expect(b, presence('subscribe', bare(au)), 'the request, replaced')
            assert said(e) == ({None: 'second try'}, None), tostr(e)
            expect_none(b, presence('subscribe', bare(au)), 'the request twice')
            send_sub(b, au, 'subscribed')
            expect_push(b, bare(au), 'from')
            expect(a, presence('subscribed', bare(bu)), 'subscribed')
        finally:
            b.close()
        rows = server.db_query('SELECT ask_in FROM roster_items '
                               'WHERE username = ? AND jid = ? AND ask_in_stanza IS NULL',
                               (bu, bare(au)))
        assert rows == [(0,)], rows
    finally:
        a.close()


def test_waiting_request_keeps_its_status_and_nick_across_a_restart(fresh_server):
    """What a waiting request said is stored with it, not kept in memory."""
    srv = fresh_server
    au, bu = new_user(srv, 'a'), new_user(srv, 'b')
    a = online(srv, au)
    try:
        send_request(a, bu, (None, "Hi, I'm Alice from sales"), nick='Alice')
        expect_push(a, bare(bu), 'none', ask='subscribe')
        roster_items(a)
    finally:
        a.close()
    srv.stop()
    srv.start()
    b = online(srv, bu)
    try:
        e = expect(b, presence('subscribe', bare(au)), 'stored subscribe request')
        assert said(e) == ({None: "Hi, I'm Alice from sales"}, 'Alice'), tostr(e)
    finally:
        b.close()


def test_approval_while_requester_offline(server):
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a = online(server, au)
    b = online(server, bu)
    send_sub(a, bu, 'subscribe')
    expect_push(a, bare(bu), 'none', ask='subscribe')
    expect(b, presence('subscribe', bare(au)), 'subscribe')
    a.close()
    try:
        send_sub(b, au, 'subscribed')
        expect_push(b, bare(au), 'from')
        a = online(server, au)
        assert roster_items(a)[bare(bu)].get('subscription') == 'to'
        expect(a, presence(None, b.jid), 'presence of %s (probe answer)' % bu)
    finally:
        a.close()
        b.close()


def test_preapproval(server):
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        # advertised after authentication (RFC 6121 §3.4)
        assert b.features.find(q('urn:xmpp:features:pre-approval', 'sub')) is not None, tostr(b.features)
        # b approves before a asks: stays on b's server.
        send_sub(b, au, 'subscribed')
        expect_push(b, bare(au), 'none', approved='true')
        expect_none(a, presence('subscribed'), 'subscribed before any request')
        # a asks: answered at once, b is not asked.
        send_sub(a, bu, 'subscribe')
        expect_push(a, bare(bu), 'none', ask='subscribe')
        expect(a, presence('subscribed', bare(bu)), 'automatic subscribed')
        expect_push(a, bare(bu), 'to')
        expect(a, presence(None, b.jid), 'presence of %s' % bu)
        expect_push(b, bare(au), 'from')
        expect_none(b, presence('subscribe'), 'subscribe request after pre-approval')
    finally:
        a.close()
        b.close()


def test_unsubscribe_and_unsubscribed(server):
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        # a stops following b.
        send_sub(a, bu, 'unsubscribe')
        expect_push(a, bare(bu), 'from')
        expect(b, presence('unsubscribe', bare(au)), 'unsubscribe')
        expect_push(b, bare(au), 'to')
        expect(a, presence('unavailable', b.jid), 'unavailable from %s' % bu)
        # a cancels b's subscription.
        send_sub(a, bu, 'unsubscribed')
        expect_push(a, bare(bu), 'none')
        expect(b, presence('unsubscribed', bare(au)), 'unsubscribed')
        expect_push(b, bare(au), 'none')
        expect(b, presence('unavailable', a.jid), 'unavailable from %s' % au)
        # No subscription left: presence changes reach nobody.
        a.send('<presence><show>dnd</show></presence>')
        expect_none(b, presence(None, a.jid), 'presence without a subscription')
        assert roster_items(a)[bare(bu)].get('subscription') == 'none'
        assert roster_items(b)[bare(au)].get('subscription') == 'none'
    finally:
        a.close()
        b.close()


def test_denied_request(server):
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        send_sub(a, bu, 'subscribe')
        expect_push(a, bare(bu), 'none', ask='subscribe')
        expect(b, presence('subscribe', bare(au)), 'subscribe')
        send_sub(b, au, 'unsubscribed')
        expect(a, presence('unsubscribed', bare(bu)), 'unsubscribed')
        expect_push(a, bare(bu), 'none')
        assert bare(au) not in roster_items(b)
    finally:
        a.close()
        b.close()


def test_probe_answered_only_to_subscribers(server):
    au, bu, cu = new_user(server, 'a'), new_user(server, 'b'), new_user(server, 'c')
    a, b, c = online(server, au), online(server, bu), online(server, cu)
    try:
        send_sub(a, bu, 'subscribe')
        expect(b, presence('subscribe', bare(au)), 'subscribe')
        send_sub(b, au, 'subscribed')
        expect(a, presence(None, b.jid), 'presence of %s' % bu)
        # a (subscribed) probes: answered.
        a.send("<presence to='%s' type='probe'/>" % bare(bu))
        expect(a, presence(None, b.jid), 'probe answer')
        # c (not subscribed) probes: nothing.
        c.send("<presence to='%s' type='probe'/>" % bare(bu))
        expect_none(c, presence(None, b.jid), 'probe answer to a non-subscriber')
        # A broadcast reaches the subscriber only.
        b.send('<presence><show>chat</show></presence>')
        expect(a, presence(None, b.jid), 'broadcast to the subscriber')
        expect_none(c, presence(None, b.jid), 'broadcast to a non-subscriber')
        # The probe did not reach b's client.
        expect_none(b, presence('probe'), 'probe delivered to the client', wait=0.2)
    finally:
        for x in (a, b, c):
            x.close()


@pytest.mark.parametrize('available', [True, False])
def test_directed_presence_ended_with_the_users_status(server, available):
    """The unavailable presence a user broadcasts reaches its directed
    presence targets as its contacts get it, status included (RFC 6121
    §4.5.2), whether or not it had sent initial presence."""
    au, cu = new_user(server, 'a'), new_user(server, 'c')
    c = online(server, cu)
    if available:
        a = online(server, au)
    else:
        a = RawClient(server.port)
        a.login(au, server.password(au), resource=unique('r'), presence=False)
    try:
        a.send("<presence to='%s'/>" % c.jid)
        expect(c, presence(None, a.jid), 'directed presence')
        a.send("<presence type='unavailable'><status>gone fishing</status></presence>")
        e = expect(c, presence('unavailable', a.jid), 'unavailable to the directed presence target')
        assert e.findtext(q(NS_CLIENT, 'status')) == 'gone fishing', tostr(e)
    finally:
        a.close()
        c.close()


def test_probe_of_a_non_subscriber_answered_unsubscribed(server):
    """a's roster says it sees b's presence, b's does not let it (the two
    rosters are out of step): a's probe at login is answered 'unsubscribed'
    (RFC 6121 §4.3.2), which mends a's roster; b's roster is untouched."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    server.db_query("INSERT INTO roster_items (server_host, username, jid, subscription, ask_out,"
                    " ask_in, approved) VALUES (?, ?, ?, 'T', 0, 0, 0)", (HOST, au, bare(bu)))
    b = online(server, bu)
    a = online(server, au)
    try:
        expect_push(a, bare(bu), 'none')
        expect_none(a, presence(None, b.jid), "b's presence without b's consent")
        assert bare(au) not in roster_items(b)
    finally:
        a.close()
        b.close()


def test_directed_presence_and_unavailable_on_disconnect(server):
    au, cu = new_user(server, 'a'), new_user(server, 'c')
    a, c = online(server, au), online(server, cu)
    try:
        a.send("<presence to='%s'><status>hi</status></presence>" % c.jid)
        e = expect(c, presence(None, a.jid), 'directed presence')
        assert e.findtext(q(NS_CLIENT, 'status')) == 'hi', tostr(e)
        a_jid = a.jid
        a.sock.close()
        a.closed = True
        expect(c, presence('unavailable', a_jid), 'unavailable after directed presence')
    finally:
        a.close()
        c.close()


def test_other_resources_see_each_other(server):
    au = new_user(server, 'a')
    a1 = online(server, au)
    a2 = online(server, au)
    try:
        expect(a1, presence(None, a2.jid), 'presence of the second resource')
        expect(a2, presence(None, a1.jid), 'presence of the first resource')
        a2.send('<presence type="unavailable"/>')
        expect(a1, presence('unavailable', a2.jid), 'unavailable of the second resource')
    finally:
        a1.close()
        a2.close()


def test_roster_remove_cancels_both_ways(server):
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        r = a.iq('set', "<query xmlns='%s'><item jid='%s' subscription='remove'/></query>"
                 % (NS_ROSTER, bare(bu)))
        assert r.get('type') == 'result', tostr(r)
        expect_push(a, bare(bu), 'remove')
        expect(b, presence('unsubscribe', bare(au)), 'unsubscribe')
        expect(b, presence('unsubscribed', bare(au)), 'unsubscribed')
        expect_push(b, bare(au), 'to')     # a no longer follows b
        expect_push(b, bare(au), 'none')   # nor b a
        expect(b, presence('unavailable', a.jid), 'unavailable from %s' % au)
        assert roster_items(b)[bare(au)].get('subscription') == 'none'
        assert bare(bu) not in roster_items(a)
    finally:
        a.close()
        b.close()


def roster_set(c, jid):
    """Add jid to c's roster with a roster set of the JID alone; returns
    the push c got for it."""
    r = c.iq('set', "<query xmlns='%s'><item jid='%s'/></query>" % (NS_ROSTER, jid))
    assert r.get('type') == 'result', tostr(r)
    return expect(c, push(jid), 'roster push for %s' % jid)


def test_added_contact_stays_in_the_roster_when_it_asks(server):
    """An item the user added (a JID alone) is the user's: the contact's
    request leaves it in the roster, with no push (nothing the client sees
    changed), and refusing the request leaves it there too."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        roster_set(a, bare(bu))
        send_sub(b, au, 'subscribe')
        expect(a, presence('subscribe', bare(bu)), 'the request')
        # a push would have come before the request
        assert not [e for e in a.received if id(e) not in a.claimed and push(bare(bu))(e)]
        assert bare(bu) in roster_items(a)
        a2 = online(server, au)
        try:
            assert bare(bu) in [i.get('jid') for i in a2.roster.iter(q(NS_ROSTER, 'item'))]
            expect(a2, presence('subscribe', bare(bu)), 'the request again at login')
        finally:
            a2.close()
        send_sub(a, bu, 'unsubscribed')
        expect(b, presence('unsubscribed', bare(au)), 'the refusal')
        item = roster_items(a)[bare(bu)]
        assert item.get('subscription') == 'none' and item.get('ask') is None, tostr(item)
    finally:
        a.close()
        b.close()


def test_contact_that_asked_then_added_is_in_the_roster_of_that_version(server):
    """A contact whose request waits, hidden, is in the roster once the
    user adds it: the roster get at the version the push named holds it
    (RFC 6121 §2.6: one version, one roster)."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    b = online(server, bu)
    try:
        send_sub(b, au, 'subscribe')
        expect_push(b, bare(au), 'none', ask='subscribe')
        a = online(server, au)
        try:
            expect(a, presence('subscribe', bare(bu)), 'the waiting request')
            assert bare(bu) not in [i.get('jid') for i in a.roster.iter(q(NS_ROSTER, 'item'))]
            pushed = roster_set(a, bare(bu))
            ver = pushed.find(q(NS_ROSTER, 'query')).get('ver')
            r = a.iq('get', "<query xmlns='%s' ver=''/>" % NS_ROSTER)
            query = r.find(q(NS_ROSTER, 'query'))
            assert query is not None and query.get('ver') == ver, tostr(r)
            assert bare(bu) in [i.get('jid') for i in query.iter(q(NS_ROSTER, 'item'))], tostr(r)
            # a client that keeps the pushed version is up to date
            r = a.iq('get', "<query xmlns='%s' ver='%s'/>" % (NS_ROSTER, ver))
            assert r.get('type') == 'result' and r.find(q(NS_ROSTER, 'query')) is None, tostr(r)
            # the request still waits for an answer
            send_sub(a, bu, 'subscribed')
            expect_push(a, bare(bu), 'from')
            expect(b, presence('subscribed', bare(au)), 'the approval')
        finally:
            a.close()
    finally:
        b.close()


FANS = 'fans.' + HOST


@pytest.fixture(scope='module')
def fans(tmp_path_factory):
    """(server, component): a parleyd whose rosters hold 3 items at most,
    and a connected component, FANS, that sends presence from as many JIDs
    as a test wants."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-fans'),
                             components='  %s: { secret: "fans-secret" }\n' % FANS)
    srv.enable_module('roster', '{ max_items: 3 }')
    srv.start_with_users()
    comp = RawComponent(srv.component_port, FANS, timeout=10)
    try:
        assert comp.handshake('fans-secret') == 'ok'
        yield srv, comp
    finally:
        comp.close()
        srv.finish()


def test_waiting_requests_do_not_fill_the_roster(fans):
    """Requests of contacts the user does not have in the roster are no
    roster items: max_items does not count them, so others cannot fill a
    user's roster; a contact the user adds counts, request or not."""
    srv, comp = fans
    au = new_user(srv, 'a')
    a = online(srv, au)
    try:
        askers = ['%s@%s' % (unique('fan'), FANS) for _ in range(3)]
        for j in askers:
            comp.send("<presence from='%s' to='%s' type='subscribe'/>" % (j, bare(au)))
        for j in askers:
            expect(a, presence('subscribe', j), 'the request of %s' % j)
        assert roster_items(a) == {}
        roster_set(a, askers[0])
        for i in range(2):
            roster_set(a, '%s@example.net' % unique('friend%d-' % i))
        r = a.iq('set', "<query xmlns='%s'><item jid='%s'/></query>" % (NS_ROSTER, askers[1]))
        assert r.get('type') == 'error' and stanza_error(r) == 'not-allowed', tostr(r)
        assert len(roster_items(a)) == 3
    finally:
        a.close()


def test_waiting_requests_are_bounded(fans):
    """At most presence.max_pending_requests (100) requests of contacts
    not in the roster wait for one user: one more is dropped, neither kept
    nor delivered, and its sender hears nothing.  Answering one makes room."""
    srv, comp = fans
    au = new_user(srv, 'a')
    a = online(srv, au)
    try:
        askers = ['%s@%s' % (unique('fan'), FANS) for _ in range(101)]
        comp.send(''.join("<presence from='%s' to='%s' type='subscribe'/>" % (j, bare(au))
                          for j in askers))
        # presence of the last asker waits behind its request, the last
        # one queued: it reaches the user after they were all handled
        marker = askers[100] + '/m'
        comp.send("<presence from='%s' to='%s'/>" % (marker, a.jid))
        expect(a, presence(None, marker), 'the presence sent after the requests', timeout=30)
        got = {e.get('from') for e in a.received if presence('subscribe')(e)}
        assert got == set(askers[:100]), 'delivered: %d, beyond the first 100: %s' % (
            len(got), sorted(got - set(askers[:100])))
        assert srv.db_query('SELECT COUNT(*) FROM roster_items WHERE username = ?', (au,)) == [(100,)]
        assert re.search(r'subscription request from %s to %s dropped' % (re.escape(askers[100]), au),
                         srv.log()), srv.log()[-3000:]
        # its sender hears nothing (what came before the answer to a ping)
        ping = unique('ping')
        comp.send("<iq type='get' id='%s' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                  % (ping, FANS, HOST))
        comp.wait_for(lambda e: e.get('id') == ping, what='the answer to the ping')
        assert not [e for e in comp.received if e.get('to') == askers[100]], \
            [tostr(e) for e in comp.received]
        # a contact whose request waits may ask again: what it says is kept
        comp.send("<presence from='%s' to='%s' type='subscribe'><status>again</status></presence>"
                  % (askers[0], bare(au)))
        marker = askers[0] + '/m'
        comp.send("<presence from='%s' to='%s'/>" % (marker, a.jid))
        expect(a, presence(None, marker), 'the presence sent after the request')
        rows = srv.db_query('SELECT ask_in_stanza FROM roster_items WHERE username = ? AND jid = ?',
                            (au, askers[0]))
        assert len(rows) == 1 and 'again' in rows[0][0], rows
        # one answered: room for another
        a.send("<presence to='%s' type='subscribed'/>" % askers[1])
        expect_push(a, askers[1], 'from')
        late = '%s@%s' % (unique('fan'), FANS)
        comp.send("<presence from='%s' to='%s' type='subscribe'/>" % (late, bare(au)))
        expect(a, presence('subscribe', late), 'a request once there is room')
        assert roster_items(a).keys() == {askers[1]}
    finally:
        a.close()


def test_request_to_unknown_account_is_refused(server):
    au = new_user(server, 'a')
    nobody = unique('nobody')
    a = online(server, au)
    try:
        send_sub(a, nobody, 'subscribe')
        expect_push(a, bare(nobody), 'none', ask='subscribe')
        expect(a, presence('unsubscribed', bare(nobody)), 'unsubscribed from an unknown account')
        expect_push(a, bare(nobody), 'none')
    finally:
        a.close()


def test_presence_reaches_resources_with_negative_priority(server):
    """Presence to a bare JID goes to every available resource, negative
    priority included (RFC 6121 §8.5.2.1.2); only messages skip those."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a = online(server, au)
    b = RawClient(server.port)
    b.login(bu, server.password(bu), resource=unique('neg'), presence=False)
    b.claimed = set()
    b.send('<presence><priority>-1</priority></presence>')
    b.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)     # a round trip: the presence is in effect
    try:
        a.send("<presence to='%s'><status>hello</status></presence>" % bare(bu))
        e = expect(b, presence(None, a.jid), 'directed presence to a negative-priority resource')
        assert e.findtext(q(NS_CLIENT, 'status')) == 'hello', tostr(e)
        body = unique('m')
        a.send("<message to='%s' type='chat'><body>%s</body></message>" % (bare(bu), body))
        expect_none(b, lambda e: e.tag == q(NS_CLIENT, 'message') and
                    e.findtext(q(NS_CLIENT, 'body')) == body, 'message to a negative-priority resource')
    finally:
        a.close()
        b.close()


def _remove_account(server, how, user, c):
    """Remove user's account: in-band from its own stream c (XEP-0077),
    with parleyctl, or with an administrator's delete-user (XEP-0133)."""
    if how == 'ibr':
        r = c.iq('set', "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
        assert r.get('type') == 'result', tostr(r)
    elif how == 'ctl':
        r = server.ctl('unregister', user, HOST)
        assert r.returncode == 0, r.stderr
    else:
        admin = RawClient(server.port)
        try:
            admin.login('alice', server.password('alice'))
            node = 'http://jabber.org/protocol/admin#delete-user'
            r = admin.iq('set', "<command xmlns='%s' node='%s' action='execute'/>" % (NS_COMMANDS, node),
                         to=HOST)
            sid = r.find(q(NS_COMMANDS, 'command')).get('sessionid')
            r = admin.iq('set', "<command xmlns='%s' node='%s' sessionid='%s'>"
                         "<x xmlns='jabber:x:data' type='submit'><field var='accountjids'>"
                         "<value>%s</value></field></x></command>" % (NS_COMMANDS, node, sid, bare(user)),
                         to=HOST)
            assert r.find(q(NS_COMMANDS, 'command')).get('status') == 'completed', tostr(r)
        finally:
            admin.close()


@pytest.mark.parametrize('how', ['ibr', 'ctl', 'adhoc'])
def test_removed_account_goes_offline(server, how):
    """The sessions of a removed account end with the roster still there,
    so its contacts see each resource go offline (RFC 6121 §4.5.2): the
    second session's broadcast waits behind the first one's (one user's
    presence work runs in order), and the removal waits for both."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    phone = None
    try:
        make_mutual(a, au, b, bu)
        phone = online(server, bu)
        expect(a, presence(None, phone.jid), 'available of the second resource of %s' % bu)
        _remove_account(server, how, bu, b)
        assert b.stream_error() == 'not-authorized'
        assert phone.stream_error() == 'not-authorized'
        expect(a, presence('unavailable', b.jid), 'unavailable of the removed %s' % b.jid)
        expect(a, presence('unavailable', phone.jid), 'unavailable of the removed %s' % phone.jid)
    finally:
        a.close()
        b.close()
        if phone is not None:
            phone.close()


def test_removed_account_tells_its_contacts(server):
    """Once an account is removed, a contact on this server is told, as
    if the user had removed the item (XEP-0077 §3.2, RFC 6121 §2.5.2):
    'unsubscribe' and 'unsubscribed' from the bare JID, and its roster
    item keeps no subscription."""
    au, bu = new_user(server, 'a'), new_user(server, 'b')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        _remove_account(server, 'ibr', au, a)
        expect(b, presence('unsubscribe', bare(au)), 'unsubscribe from the removed %s' % au)
        expect_push(b, bare(au), 'to')
        expect(b, presence('unsubscribed', bare(au)), 'unsubscribed from the removed %s' % au)
        expect_push(b, bare(au), 'none')
        assert roster_items(b)[bare(au)].get('subscription') == 'none'
        rows = server.db_query("SELECT subscription FROM roster_items WHERE server_host = ? AND"
                               " username = ? AND jid = ?", (HOST, bu, bare(au)))
        assert [r[0] for r in rows] == ['N'], rows
    finally:
        a.close()
        b.close()


def fed_contacts(a, p, local):
    """local (a's user on a.test, its RawClient a) and four contacts of the
    raw peer: romeo shares presence both ways, juliet was asked by local
    and has not answered, tybalt asked local and was not answered, nurse
    was approved in advance.  Returns their bare JIDs."""
    romeo, juliet, tybalt, nurse = ('%s@%s' % (unique(n), FED_B) for n in ('romeo', 'juliet', 'tybalt', 'nurse'))

    def to_peer(typ, to):
        return p.wait_for(lambda e: e.tag == q(NS_SERVER, 'presence') and e.get('type') == typ and
                          e.get('to') == to, what='%s to %s' % (typ, to))

    for c in (romeo, juliet):
        a.send("<presence to='%s' type='subscribe'/>" % c)
        to_peer('subscribe', c)
        expect_push(a, c, 'none', ask='subscribe')
    p.send("<presence from='%s' to='%s' type='subscribed'/>" % (romeo, local))
    expect_push(a, romeo, 'to')
    for c in (romeo, tybalt):
        p.send("<presence from='%s' to='%s' type='subscribe'/>" % (c, local))
        expect(a, presence('subscribe', c), 'subscribe from %s' % c)
    a.send("<presence to='%s' type='subscribed'/>" % romeo)
    to_peer('subscribed', romeo)
    expect_push(a, romeo, 'both')
    a.send("<presence to='%s' type='subscribed'/>" % nurse)
    expect_push(a, nurse, 'none', approved='true')
    return romeo, juliet, tybalt, nurse


def peer_presence_until_pong(srv, p, domain_user):
    """Ping srv's domain from the raw peer; returns (type, to) of each
    presence from domain_user that came before the answer."""
    ping = unique('ping')
    p.send("<iq type='get' id='%s' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % (ping, FED_B, FED_A))
    seen = []
    p.wait_for(lambda e: seen.append(e) or (e.tag == q(NS_SERVER, 'iq') and e.get('id') == ping),
               what='the answer to the ping')
    return sorted((e.get('type'), e.get('to')) for e in seen
                  if e.tag == q(NS_SERVER, 'presence') and e.get('from') == domain_user)


def test_unregistered_account_tells_contacts_on_another_server(fed_peer):
    """parleyctl unregister: each contact on another server gets what
    its subscriptions call for ('unsubscribe' where the user had one or
    asked for one, 'unsubscribed' where the contact had one, asked for
    one, or was approved in advance), from the user's bare JID, once the
    account is gone."""
    srv, p = fed_peer
    au = new_user(srv, 'a', host=FED_A)
    local = '%s@%s' % (au, FED_A)
    a = online(srv, au, host=FED_A)
    try:
        romeo, juliet, tybalt, nurse = fed_contacts(a, p, local)
        r = srv.ctl('unregister', au, FED_A)
        assert r.returncode == 0, r.stderr
        assert peer_presence_until_pong(srv, p, local) == sorted([
            ('unsubscribe', romeo), ('unsubscribed', romeo), ('unsubscribe', juliet),
            ('unsubscribed', tybalt), ('unsubscribed', nurse)])
    finally:
        a.close()


def test_failed_removal_tells_nobody(fed_peer):
    """A removal the store refuses sends nothing: the contacts keep
    their subscriptions, as the user keeps the account."""
    srv, p = fed_peer
    au = new_user(srv, 'a', host=FED_A)
    local = '%s@%s' % (au, FED_A)
    a = online(srv, au, host=FED_A)
    try:
        fed_contacts(a, p, local)
        srv.db_query("CREATE TRIGGER keep_%s BEFORE DELETE ON users WHEN OLD.username = '%s' "
                     "BEGIN SELECT RAISE(ABORT, 'kept by the test'); END" % (au, au), host=FED_A)
        r = srv.ctl('unregister', au, FED_A)
        assert r.returncode != 0, r.stdout
        assert peer_presence_until_pong(srv, p, local) == []
        assert srv.ctl('user-exists', au, FED_A).returncode == 0
    finally:
        a.close()
