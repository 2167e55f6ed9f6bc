"""Presence subscriptions (RFC 6121 §3) and presence broadcast (§4):
subscribe and approve with both parties online or one offline,
pre-approval, unsubscribe and unsubscribed, probes answered to
subscribers only, directed presence, roster pushes on every change, and
unavailable presence when a connection drops or the account is removed.
Every test registers
fresh users, so the tests do not depend on each other."""
import pytest

from parleytest import FED_A, FED_B, HOST, NS_CLIENT, NS_REGISTER, NS_SERVER, RawClient, q, tostr, unique

NS_ROSTER = 'jabber:iq:roster'
NS_COMMANDS = 'http://jabber.org/protocol/commands'


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


def presence(typ=None, frm=None):
    """Predicate: a presence of type typ (None: available) from frm."""
    def match(e):
        if e.tag != q(NS_CLIENT, 'presence') or e.get('type') != typ:
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
