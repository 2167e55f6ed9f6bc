"""Blocking command (XEP-0191): the blocklist is read, changed and pushed
to the resources that asked for it; stanzas from a blocked JID are not
delivered (messages and iq bounced with service-unavailable, presence
dropped); stanzas to a blocked JID are refused with not-acceptable and
<blocked/>; blocking a contact that may see the user's presence sends it
unavailable presence and unblocking it the current presence;
the list survives a new login and dies with the account.  Every test
registers fresh users."""

from parleytest import HOST, NS_CLIENT, q, stanza_error, tostr
from test_presence import (bare, expect, expect_none, make_mutual, new_user, online,
                           presence, roster_items, send_sub)

NS_BLOCKING = 'urn:xmpp:blocking'
NS_BLOCKING_ERRORS = 'urn:xmpp:blocking:errors'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'


# ---- helpers ----------------------------------------------------------------

def items(*jids):
    return ''.join("<item jid='%s'/>" % j for j in jids)


def blocklist(c):
    """The blocked JIDs, as a set (and c becomes interested)."""
    r = c.iq('get', "<blocklist xmlns='%s'/>" % NS_BLOCKING)
    assert r.get('type') == 'result', tostr(r)
    bl = r.find(q(NS_BLOCKING, 'blocklist'))
    assert bl is not None, tostr(r)
    return {i.get('jid') for i in bl.findall(q(NS_BLOCKING, 'item'))}


def block(c, *jids):
    r = c.iq('set', "<block xmlns='%s'>%s</block>" % (NS_BLOCKING, items(*jids)))
    assert r.get('type') == 'result', tostr(r)


def unblock(c, *jids):
    r = c.iq('set', "<unblock xmlns='%s'>%s</unblock>" % (NS_BLOCKING, items(*jids)))
    assert r.get('type') == 'result', tostr(r)


def blocking_push(name):
    """Predicate: a push of <block/> or <unblock/> (name)."""
    def match(e):
        return (e.tag == q(NS_CLIENT, 'iq') and e.get('type') == 'set'
                and e.find(q(NS_BLOCKING, name)) is not None)
    return match


def pushed_jids(e, name):
    return {i.get('jid') for i in e.find(q(NS_BLOCKING, name)).findall(q(NS_BLOCKING, 'item'))}


def message(body, frm=None):
    def match(e):
        if e.tag != q(NS_CLIENT, 'message') or e.findtext(q(NS_CLIENT, 'body')) != body:
            return False
        return frm is None or e.get('from', '').split('/')[0] == frm
    return match


def send_message(c, to, body, typ='chat'):
    c.send("<message to='%s' type='%s'><body>%s</body></message>" % (to, typ, body))


def blocked_error(e):
    err = e.find(q(NS_CLIENT, 'error'))
    return err is not None and err.find(q(NS_BLOCKING_ERRORS, 'blocked')) is not None




def close_all(*cs):
    for c in cs:
        c.close()


# ---- tests ------------------------------------------------------------------

def test_feature_advertised(server):
    u = new_user(server, 'bf')
    c = online(server, u)
    try:
        for to in (HOST, bare(u)):
            r = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
            feats = {f.get('var') for f in r.iter(q(NS_DISCO_INFO, 'feature'))}
            assert NS_BLOCKING in feats, (to, tostr(r))
    finally:
        c.close()


def test_empty_list_and_bad_requests(server):
    u = new_user(server, 'be')
    c = online(server, u)
    try:
        assert blocklist(c) == set()
        r = c.iq('set', "<block xmlns='%s'/>" % NS_BLOCKING)
        assert stanza_error(r) == 'bad-request', tostr(r)
        r = c.iq('set', "<block xmlns='%s'><item jid='@bad@'/></block>" % NS_BLOCKING)
        assert stanza_error(r) == 'jid-malformed', tostr(r)
        r = c.iq('set', "<block xmlns='%s'><item/></block>" % NS_BLOCKING)
        assert stanza_error(r) == 'jid-malformed', tostr(r)
        # Nothing was stored by the refused requests.
        assert blocklist(c) == set()
        # Someone else's list is not ours to read.
        o = new_user(server, 'bo')
        r = c.iq('get', "<blocklist xmlns='%s'/>" % NS_BLOCKING, to=bare(o))
        assert stanza_error(r) == 'forbidden', tostr(r)
    finally:
        c.close()


def test_block_pushes_to_interested_resources(server):
    u = new_user(server, 'bp')
    c1 = online(server, u, resource='one')
    c2 = online(server, u, resource='two')
    c3 = online(server, u, resource='three')   # never asks for the list
    c1.claimed, c2.claimed, c3.claimed = set(), set(), set()
    try:
        assert blocklist(c1) == set()
        assert blocklist(c2) == set()
        block(c1, 'spammer@example.net', 'Evil.Example')
        for c in (c1, c2):
            e = expect(c, blocking_push('block'), 'block push on %s' % c.jid)
            assert pushed_jids(e, 'block') == {'spammer@example.net', 'evil.example'}, tostr(e)
            assert e.get('to') == c.jid, tostr(e)
        expect_none(c3, blocking_push('block'), 'block push to an uninterested resource')
        assert blocklist(c3) == {'spammer@example.net', 'evil.example'}
    finally:
        close_all(c1, c2, c3)


def test_blocked_message_and_iq_bounced(server):
    au, bu = new_user(server, 'ba'), new_user(server, 'bb')
    a, b = online(server, au), online(server, bu)
    try:
        block(a, bare(bu))
        send_message(b, bare(au), 'blocked-hello')
        e = expect(b, lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error',
                   'error for the blocked message')
        assert stanza_error(e) == 'service-unavailable', tostr(e)
        # An iq to the user's account is bounced too.
        r = b.iq('get', "<vCard xmlns='vcard-temp'/>", to=bare(au))
        assert stanza_error(r) == 'service-unavailable', tostr(r)
        expect_none(a, message('blocked-hello'), 'message from a blocked JID')
        # Someone not blocked still gets through.
        cu = new_user(server, 'bc')
        c = online(server, cu)
        try:
            send_message(c, bare(au), 'hello-from-c')
            expect(a, message('hello-from-c'), 'message from an unblocked JID')
        finally:
            c.close()
    finally:
        close_all(a, b)


def test_blocked_by_domain_and_full_jid(server):
    au, bu = new_user(server, 'bd'), new_user(server, 'be')
    a = online(server, au)
    b1, b2 = online(server, bu, resource='one'), online(server, bu, resource='two')
    try:
        block(a, '%s/one' % bare(bu))
        send_message(b1, bare(au), 'from-one')
        send_message(b2, bare(au), 'from-two')
        expect(a, message('from-two'), 'message from the unblocked resource')
        expect_none(a, message('from-one'), 'message from the blocked resource')
        unblock(a)
        send_message(b1, bare(au), 'from-one-again')
        expect(a, message('from-one-again'), 'message after unblocking all')
    finally:
        close_all(a, b1, b2)


def test_blocked_contact_presence_not_delivered(server):
    au, bu = new_user(server, 'bq'), new_user(server, 'br')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        block(a, bare(bu))
        b.send('<presence><show>away</show></presence>')
        expect_none(a, presence(None, b.jid), 'presence from a blocked contact')
        # A directed one neither.
        b.send("<presence to='%s'><show>dnd</show></presence>" % a.jid)
        expect_none(a, presence(None, b.jid), 'directed presence from a blocked contact')
    finally:
        close_all(a, b)


def test_outbound_to_blocked_refused(server):
    au, bu = new_user(server, 'bs'), new_user(server, 'bt')
    a, b = online(server, au), online(server, bu)
    try:
        block(a, bare(bu))
        send_message(a, bare(bu), 'to-blocked')
        e = expect(a, lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error',
                   'error for the message to a blocked JID')
        assert stanza_error(e) == 'not-acceptable', tostr(e)
        assert blocked_error(e), tostr(e)
        r = a.iq('get', "<vCard xmlns='vcard-temp'/>", to=bare(bu))
        assert stanza_error(r) == 'not-acceptable' and blocked_error(r), tostr(r)
        expect_none(b, message('to-blocked'), 'message to a blocked JID')
    finally:
        close_all(a, b)


def test_block_sends_unavailable_and_stops_broadcast(server):
    au, bu = new_user(server, 'bu'), new_user(server, 'bv')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        block(a, bare(bu))
        expect(b, presence('unavailable', a.jid), 'unavailable from the blocking user')
        # The blocking user's later presence does not reach the contact.
        a.send('<presence><show>chat</show></presence>')
        expect_none(b, presence(None, a.jid), 'presence broadcast to a blocked contact')
        # Unblocked: the contact is sent the current presence (§3.4), and
        # the next broadcast reaches it again.
        unblock(a, bare(bu))
        e = expect(b, presence(None, a.jid), 'current presence after unblocking')
        assert e.findtext(q(NS_CLIENT, 'show')) == 'chat', tostr(e)
        a.send('<presence><show>xa</show></presence>')
        e = expect(b, presence(None, a.jid), 'presence after unblocking')
        assert e.findtext(q(NS_CLIENT, 'show')) == 'xa', tostr(e)
    finally:
        close_all(a, b)


def test_unblock_all_sends_current_presence(server):
    au, bu, cu = new_user(server, 'ua'), new_user(server, 'ub'), new_user(server, 'uc')
    a, b, c = online(server, au), online(server, bu), online(server, cu)
    try:
        make_mutual(a, au, b, bu)
        make_mutual(a, au, c, cu)
        a.send('<presence><show>dnd</show></presence>')
        expect(b, presence(None, a.jid), 'presence of a')
        expect(c, presence(None, a.jid), 'presence of a')
        block(a, bare(bu), 'x@example.net')
        expect(b, presence('unavailable', a.jid), 'unavailable from the blocking user')
        unblock(a)
        e = expect(b, presence(None, a.jid), 'current presence after unblocking all')
        assert e.findtext(q(NS_CLIENT, 'show')) == 'dnd', tostr(e)
        # A contact that was never blocked is not sent it again.
        expect_none(c, presence(None, a.jid), 'presence to a contact never blocked')
    finally:
        close_all(a, b, c)


def test_block_of_a_non_subscriber_sends_nothing(server):
    """Only contacts that may see the user's presence are sent unavailable
    when blocked; anyone else would learn that the user is online."""
    au, bu, cu = new_user(server, 'na'), new_user(server, 'nb'), new_user(server, 'nc')
    a, b, c = online(server, au), online(server, bu), online(server, cu)
    try:
        # b subscribed to a's presence, a not to b's: b does not see a.
        send_sub(a, bu, 'subscribe')
        expect(b, presence('subscribe', bare(au)), 'subscribe from a')
        b.send("<presence to='%s' type='subscribed'/>" % bare(au))
        expect(a, presence(None, b.jid), 'presence of b')
        block(a, bare(bu), bare(cu))
        expect_none(b, presence('unavailable', a.jid), 'unavailable to a contact without from')
        expect_none(c, presence('unavailable', a.jid), 'unavailable to a stranger')
        # Nor the unblock their presence.
        unblock(a, bare(bu), bare(cu))
        expect_none(b, presence(None, a.jid), 'presence to a contact without from')
        expect_none(c, presence(None, a.jid), 'presence to a stranger')
    finally:
        close_all(a, b, c)


def test_block_ends_directed_presence(server):
    """XEP-0191 §3.3: a JID that only got directed presence from a session
    (no subscription) sees that session available; a block of it sends it
    unavailable from that session."""
    au, bu = new_user(server, 'bd'), new_user(server, 'be')
    a, b = online(server, au), online(server, bu)
    try:
        a.send("<presence to='%s'><status>just you</status></presence>" % b.jid)
        expect(b, presence(None, a.jid, status='just you'), 'the directed presence')
        block(a, bare(bu))
        expect(b, presence('unavailable', a.jid), 'unavailable on the block')
    finally:
        close_all(a, b)


def test_block_stops_broadcast_to_another_local_host(server):
    """A contact of another virtual host of the same server is blocked by
    the blocking user's list, not by its own host's."""
    from parleytest import OTHER
    au, ou = new_user(server, 'bh'), new_user(server, 'bo', host=OTHER)
    ojid = '%s@%s' % (ou, OTHER)
    a = online(server, au)
    o = online(server, ou, host=OTHER)
    try:
        o.send("<presence to='%s' type='subscribe'/>" % bare(au))
        expect(a, presence('subscribe', ojid), 'subscribe from the other host')
        a.send("<presence to='%s' type='subscribed'/>" % ojid)
        expect(o, presence(None, a.jid), 'presence of a')
        block(a, ojid)
        expect(o, presence('unavailable', a.jid), 'unavailable from the blocking user')
        a.send('<presence><show>away</show></presence>')
        expect_none(o, presence(None, a.jid), 'presence broadcast to a blocked contact')
    finally:
        close_all(a, o)


def test_unblock_one_and_all(server):
    u = new_user(server, 'bw')
    c1, c2 = online(server, u), online(server, u)
    c1.claimed, c2.claimed = set(), set()
    try:
        assert blocklist(c2) == set()
        block(c1, 'a@example.net', 'b@example.net', 'c.example')
        expect(c2, blocking_push('block'), 'block push')
        unblock(c1, 'b@example.net')
        e = expect(c2, blocking_push('unblock'), 'unblock push')
        assert pushed_jids(e, 'unblock') == {'b@example.net'}, tostr(e)
        assert blocklist(c1) == {'a@example.net', 'c.example'}
        unblock(c1)
        e = expect(c2, blocking_push('unblock'), 'unblock-all push')
        assert pushed_jids(e, 'unblock') == set(), tostr(e)
        assert blocklist(c1) == set()
        assert server.db_rows('blocklist', u) == 0
    finally:
        close_all(c1, c2)


def test_block_survives_relogin(server):
    au, bu = new_user(server, 'bx'), new_user(server, 'by')
    a = online(server, au)
    try:
        block(a, bare(bu))
    finally:
        a.close()
    a, b = online(server, au), online(server, bu)
    try:
        assert blocklist(a) == {bare(bu)}
        send_message(b, bare(au), 'after-relogin')
        e = expect(b, lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error',
                   'error for the blocked message')
        assert stanza_error(e) == 'service-unavailable', tostr(e)
        expect_none(a, message('after-relogin'), 'message from a blocked JID after re-login')
    finally:
        close_all(a, b)


def test_unregister_removes_blocklist(server):
    u = new_user(server, 'bz')
    c = online(server, u)
    try:
        block(c, 'x@example.net', 'y@example.net')
    finally:
        c.close()
    assert server.db_rows('blocklist', u) == 2
    r = server.ctl('unregister', u, HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert server.db_rows('blocklist', u) == 0
    server.register(u, HOST, 'pw-' + u)
    c = online(server, u)
    try:
        assert blocklist(c) == set()
    finally:
        c.close()


def test_subscription_request_to_an_offline_user_who_blocks(server):
    """The block list applies when the user has no session too: a request
    from a blocked JID is not kept for the next login."""
    au, bu = new_user(server, 'oa'), new_user(server, 'ob')
    a = online(server, au)
    block(a, bare(bu))
    a.close()
    b = online(server, bu)
    try:
        send_sub(b, au, 'subscribe')
        b.iq('get', "<query xmlns='jabber:iq:roster'/>")  # the stanza has been handled
        a = online(server, au)
        expect_none(a, presence('subscribe', bare(bu)), 'request of a blocked JID at login')
        assert bare(bu) not in roster_items(a)
    finally:
        close_all(a, b)


def test_request_kept_from_before_the_block_not_delivered(server):
    au, bu = new_user(server, 'ka'), new_user(server, 'kb')
    a, b = online(server, au), online(server, bu)
    try:
        send_sub(b, au, 'subscribe')
        expect(a, presence('subscribe', bare(bu)), 'subscribe from b')
        block(a, bare(bu))
        a.close()
        a = online(server, au)
        expect_none(a, presence('subscribe', bare(bu)), 'kept request of a blocked JID at login')
        unblock(a, bare(bu))
        a.close()
        a = online(server, au)
        expect(a, presence('subscribe', bare(bu)), 'kept request once unblocked')
    finally:
        close_all(a, b)


def test_offline_user_answers_nothing_to_a_blocked_jid(server):
    """The block holds when the user has no session: the vCard and last
    activity the server answers on the user's behalf are refused as when
    the user is online, and given to anyone else."""
    au, bu, cu = new_user(server, 'va'), new_user(server, 'vb'), new_user(server, 'vc')
    a = online(server, au)
    r = a.iq('set', "<vCard xmlns='vcard-temp'><FN>Secret Name</FN></vCard>")
    assert r.get('type') == 'result', tostr(r)
    block(a, bare(bu))
    a.close()
    b, c = online(server, bu), online(server, cu)
    try:
        for payload in ("<vCard xmlns='vcard-temp'/>", "<query xmlns='jabber:iq:last'/>"):
            r = b.iq('get', payload, to=bare(au))
            assert stanza_error(r) == 'service-unavailable', tostr(r)
        r = c.iq('get', "<vCard xmlns='vcard-temp'/>", to=bare(au))
        assert r.get('type') == 'result' and 'Secret Name' in tostr(r), tostr(r)
    finally:
        close_all(b, c)
