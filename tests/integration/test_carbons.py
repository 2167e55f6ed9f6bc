"""Message carbons (XEP-0280): enable and disable per session, received
copies to the user's other carbons-enabled resources (messages to a full
JID and to the bare JID), sent copies, the <private/> and <no-copy/>
hints, messages that do not qualify (groupchat, headline, MUC private
messages, normal without a body), privacy lists applied to copies.
Every test registers fresh users.

Absence is checked with a marker: copies keep the order of the messages
they copy, so when the copy of a later message has arrived, a copy of an
earlier one that did not come will not come."""

from parleytest import HOST, NS_CLIENT, RawClient, q, tostr, unique
from test_presence import bare, expect, new_user

NS_CARBONS = 'urn:xmpp:carbons:2'
NS_FORWARD = 'urn:xmpp:forward:0'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'


# ---- helpers ----------------------------------------------------------------

def login(server, user, resource, priority=None):
    c = RawClient(server.port)
    c.login(user, server.password(user), resource=resource, presence=False)
    c.claimed = set()
    prio = '<priority>%d</priority>' % priority if priority is not None else ''
    c.send('<presence>%s</presence>' % prio)
    c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    return c


def enable(c, on=True):
    r = c.iq('set', "<%s xmlns='%s'/>" % ('enable' if on else 'disable', NS_CARBONS))
    assert r.get('type') == 'result', tostr(r)


def inner(e, direction):
    """The forwarded message of a carbon copy in direction, or None."""
    d = e.find(q(NS_CARBONS, direction))
    if d is None:
        return None
    return d.find('%s/%s' % (q(NS_FORWARD, 'forwarded'), q(NS_CLIENT, 'message')))


def carbon(direction, body):
    def match(e):
        if e.tag != q(NS_CLIENT, 'message'):
            return False
        m = inner(e, direction)
        return m is not None and m.findtext(q(NS_CLIENT, 'body')) == body
    return match


def any_carbon(e):
    return e.tag == q(NS_CLIENT, 'message') and (
        e.find(q(NS_CARBONS, 'received')) is not None or e.find(q(NS_CARBONS, 'sent')) is not None)


def direct(body):
    def match(e):
        return (e.tag == q(NS_CLIENT, 'message') and not any_carbon(e)
                and e.findtext(q(NS_CLIENT, 'body')) == body)
    return match


def chat(c, to, body, extra='', typ='chat'):
    c.send("<message to='%s' type='%s'><body>%s</body>%s</message>" % (to, typ, body, extra))


def no_carbon_before(c, marker_pred, what):
    """Wait for the marker copy; nothing carbon-like came before it."""
    m = expect(c, marker_pred, 'marker for ' + what)
    for e in c.received:
        if e is m:
            break
        if id(e) not in c.claimed and any_carbon(e):
            raise AssertionError('unexpected copy (%s): %s' % (what, tostr(e)))


class Account:
    """User u with resources r1 (priority 5), r2 and r3 (priority 0); carbons
    enabled on the ones named in carbons."""

    def __init__(self, server, carbons=('r2',)):
        self.user = new_user(server, 'cb')
        self.r = {}
        for name, prio in (('r1', 5), ('r2', 0), ('r3', 0)):
            self.r[name] = login(server, self.user, name, prio)
        for name in carbons:
            enable(self.r[name])

    def full(self, name):
        return '%s/%s' % (bare(self.user), name)

    def close(self):
        for c in self.r.values():
            c.close()


def contact(server):
    u = new_user(server, 'ct')
    return login(server, u, 'phone'), u


# ---- tests ------------------------------------------------------------------

def test_feature_and_iq_rules(server):
    c = login(server, new_user(server, 'cb'), 'x')
    other = new_user(server, 'cb')
    try:
        r = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=HOST)
        feats = {f.get('var') for f in r.iter(q(NS_DISCO_INFO, 'feature'))}
        assert NS_CARBONS in feats, tostr(r)
        enable(c)
        enable(c)  # again: still a result (§9.1)
        enable(c, False)
        enable(c, False)
        # Another account's carbons are not ours to set.
        r = c.iq('set', "<enable xmlns='%s'/>" % NS_CARBONS, to=bare(other))
        assert r.get('type') == 'error', tostr(r)
        assert r.find('%s/%s' % (q(NS_CLIENT, 'error'), q(NS_STANZAS, 'not-allowed'))) is not None, tostr(r)
        r = c.iq('get', "<enable xmlns='%s'/>" % NS_CARBONS)
        assert r.get('type') == 'error', tostr(r)
    finally:
        c.close()


def test_received_to_full_jid_copied_to_enabled_resources(server):
    a = Account(server, carbons=('r1', 'r2'))
    k, ku = contact(server)
    try:
        chat(k, a.full('r3'), 'to r3')
        e = expect(a.r['r3'], direct('to r3'), 'the message itself')
        for name in ('r1', 'r2'):
            w = expect(a.r[name], carbon('received', 'to r3'), 'received copy on ' + name)
            assert w.get('from') == bare(a.user), tostr(w)
            assert w.get('to') == a.full(name), tostr(w)
            assert w.get('type') == 'chat', tostr(w)
            m = inner(w, 'received')
            assert m.get('from') == k.jid and m.get('to') == a.full('r3'), tostr(w)
        # r3 did not enable carbons and got the original only; the
        # resource that got the original gets no copy of it.
        chat(k, a.full('r1'), 'to r1')
        expect(a.r['r1'], direct('to r1'), 'marker itself')
        no_carbon_before(a.r['r2'], carbon('received', 'to r1'), 'r2')
        chat(k, a.full('r2'), 'to r2')
        no_carbon_before(a.r['r1'], carbon('received', 'to r2'), 'r1 after to r1')
        assert not any(any_carbon(x) for x in a.r['r3'].received), e
    finally:
        a.close()
        k.close()


def test_received_to_bare_jid_copied_to_the_others(server):
    a = Account(server, carbons=('r1', 'r2', 'r3'))
    k, ku = contact(server)
    try:
        # r1 has the highest priority: it gets the original.
        chat(k, bare(a.user), 'to bare')
        expect(a.r['r1'], direct('to bare'), 'original on r1')
        expect(a.r['r2'], carbon('received', 'to bare'), 'copy on r2')
        expect(a.r['r3'], carbon('received', 'to bare'), 'copy on r3')
        # A normal message with a body qualifies too; r1 got no copy of either.
        chat(k, bare(a.user), 'normal', typ='normal')
        expect(a.r['r2'], carbon('received', 'normal'), 'copy of normal on r2')
        chat(k, a.full('r2'), 'marker')
        no_carbon_before(a.r['r1'], carbon('received', 'marker'), 'r1')
    finally:
        a.close()
        k.close()


def test_sent_copies(server):
    a = Account(server, carbons=('r1', 'r2'))
    k, ku = contact(server)
    try:
        chat(a.r['r1'], k.jid, 'from r1')
        expect(k, direct('from r1'), 'the contact gets it')
        w = expect(a.r['r2'], carbon('sent', 'from r1'), 'sent copy on r2')
        assert w.get('from') == bare(a.user) and w.get('to') == a.full('r2'), tostr(w)
        m = inner(w, 'sent')
        assert m.get('from') == a.full('r1') and m.get('to') == k.jid, tostr(w)
        # The sender (carbons enabled) gets no copy of its own message, and
        # r3 (not enabled) gets none either; a sender without carbons still
        # makes copies for the others (§6).
        chat(a.r['r3'], k.jid, 'from r3')
        expect(a.r['r2'], carbon('sent', 'from r3'), 'sent copy of r3 on r2')
        no_carbon_before(a.r['r1'], carbon('sent', 'from r3'), 'r1')
        assert not any(any_carbon(x) for x in a.r['r3'].received)
    finally:
        a.close()
        k.close()


def test_private_and_no_copy(server):
    a = Account(server, carbons=('r2',))
    k, ku = contact(server)
    try:
        private = "<private xmlns='%s'/>" % NS_CARBONS
        nocopy = "<no-copy xmlns='urn:xmpp:hints'/>"
        chat(a.r['r1'], k.jid, 'private out', private)
        chat(a.r['r1'], k.jid, 'nocopy out', nocopy)
        chat(k, a.full('r1'), 'private in', private)
        chat(k, a.full('r1'), 'nocopy in', nocopy)
        for body in ('private out', 'nocopy out'):
            expect(k, direct(body), body)
        for body in ('private in', 'nocopy in'):
            e = expect(a.r['r1'], direct(body), body)
            # The recipient's server removes <private/> (XEP-0280 §7).
            assert e.find(q(NS_CARBONS, 'private')) is None, tostr(e)
        chat(k, a.full('r1'), 'marker')
        no_carbon_before(a.r['r2'], carbon('received', 'marker'), 'private/no-copy')
    finally:
        a.close()
        k.close()


def test_what_does_not_qualify(server):
    a = Account(server, carbons=('r2',))
    k, ku = contact(server)
    try:
        to = a.full('r1')
        chat(k, to, 'gc', typ='groupchat')
        chat(k, to, 'headline', typ='headline')
        k.send("<message to='%s'><active xmlns='http://jabber.org/protocol/chatstates'/></message>" % to)
        chat(k, to, 'muc pm', "<x xmlns='http://jabber.org/protocol/muc#user'/>")
        chat(k, to, 'error', typ='error')
        expect(a.r['r1'], direct('muc pm'), 'muc pm itself')
        # A chat state in a chat message qualifies (XEP-0280 §9.2).
        k.send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/>"
               "</message>" % to)
        w = expect(a.r['r2'], lambda e: any_carbon(e), 'copy of a chat state')
        m = inner(w, 'received')
        assert m is not None and m.find('{http://jabber.org/protocol/chatstates}composing') is not None, \
            tostr(w)
        for e in a.r['r2'].received:
            if e is w:
                break
            assert not any_carbon(e), tostr(e)
    finally:
        a.close()
        k.close()


def test_disable_stops_copies(server):
    a = Account(server, carbons=('r2', 'r3'))
    k, ku = contact(server)
    try:
        chat(k, a.full('r1'), 'one')
        expect(a.r['r2'], carbon('received', 'one'), 'copy while enabled')
        enable(a.r['r2'], False)
        chat(k, a.full('r1'), 'two')
        chat(a.r['r1'], k.jid, 'three')
        expect(a.r['r3'], carbon('received', 'two'), 'r3 still gets copies')
        expect(a.r['r3'], carbon('sent', 'three'), 'r3 still gets sent copies')
        # r2: nothing after disabling; a copy to r2 would have come before the
        # marker r2 gets once carbons are on again.
        enable(a.r['r2'])
        chat(k, a.full('r1'), 'four')
        no_carbon_before(a.r['r2'], carbon('received', 'four'), 'disabled')
    finally:
        a.close()
        k.close()


def test_local_contact_messages_both_sides(server):
    """Both users have several resources: one message makes a sent copy on
    the sender's side and received copies on the recipient's."""
    a = Account(server, carbons=('r2', 'r3'))
    b = Account(server, carbons=('r2', 'r3'))
    try:
        chat(a.r['r1'], bare(b.user), 'hello b')
        expect(b.r['r1'], direct('hello b'), 'b r1 gets it')
        for name in ('r2', 'r3'):
            expect(a.r[name], carbon('sent', 'hello b'), 'a %s sent copy' % name)
            expect(b.r[name], carbon('received', 'hello b'), 'b %s received copy' % name)
    finally:
        a.close()
        b.close()


def test_privacy_applies_to_copies(server):
    """r2's active privacy list denies messages from the contact: r2 gets
    no copy of them, r3 does."""
    a = Account(server, carbons=('r2', 'r3'))
    k, ku = contact(server)
    try:
        name = unique('l')
        r = a.r['r2'].iq('set', "<query xmlns='jabber:iq:privacy'><list name='%s'>"
                         "<item type='jid' value='%s' action='deny' order='1'><message/></item>"
                         "<item action='allow' order='2'/></list></query>" % (name, bare(ku)))
        assert r.get('type') == 'result', tostr(r)
        r = a.r['r2'].iq('set', "<query xmlns='jabber:iq:privacy'><active name='%s'/></query>" % name)
        assert r.get('type') == 'result', tostr(r)
        chat(k, a.full('r1'), 'denied on r2')
        expect(a.r['r3'], carbon('received', 'denied on r2'), 'r3 copy')
        chat(a.r['r1'], bare(a.user) + '/nowhere', 'ignored')  # own account: no copies
        chat(a.r['r3'], k.jid, 'marker')
        no_carbon_before(a.r['r2'], carbon('sent', 'marker'), 'privacy')
    finally:
        a.close()
        k.close()


# ---- a real client library ----------------------------------------------------

def test_slixmpp_carbons(server, run):
    """slixmpp's XEP-0280 plugin enables carbons and reads both kinds of
    copies."""
    import asyncio
    from parleytest import login as slix_login, logout

    user = new_user(server, 'cb')
    k = login(server, new_user(server, 'ct'), 'phone')

    async def go():
        phone = await slix_login(server, user, resource='phone', plugins=('xep_0280',))
        laptop = await slix_login(server, user, resource='laptop', plugins=('xep_0280',))
        got = {'received': asyncio.Queue(), 'sent': asyncio.Queue()}
        laptop.add_event_handler('carbon_received', lambda m: got['received'].put_nowait(m))
        laptop.add_event_handler('carbon_sent', lambda m: got['sent'].put_nowait(m))
        try:
            await phone['xep_0280'].enable(timeout=10)
            await laptop['xep_0280'].enable(timeout=10)
            k.send("<message to='%s/phone' type='chat'><body>hi phone</body></message>" % bare(user))
            m = await asyncio.wait_for(got['received'].get(), 10)
            assert m['carbon_received']['body'] == 'hi phone', m
            assert str(m['carbon_received']['from']) == k.jid, m
            phone.send_message(mto=k.jid, mbody='hi contact', mtype='chat')
            m = await asyncio.wait_for(got['sent'].get(), 10)
            assert m['carbon_sent']['body'] == 'hi contact', m
            assert str(m['carbon_sent']['to']) == k.jid, m
        finally:
            await logout(phone, laptop)
    try:
        run(go())
        expect(k, direct('hi contact'), 'the contact gets the original')
    finally:
        k.close()


def test_enabled_inline_at_bind2(server):
    """A session that enabled carbons inline in its Bind 2 request
    (XEP-0386) gets copies without an iq."""
    from scramclient import NS_SASL2, Client
    from test_sasl2 import NS_BIND2, _authenticate_plain

    user = new_user(server, 'cb')
    other = login(server, user, 'other')
    k = login(server, new_user(server, 'ct'), 'phone')
    c = Client(server.port)
    try:
        c.open()
        c.starttls()
        el = _authenticate_plain(c, user, server.password(user),
                                 "<bind xmlns='%s'><tag>Inline</tag><enable xmlns='%s'/></bind>"
                                 % (NS_BIND2, NS_CARBONS))
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        c.claimed = set()
        chat(k, other.jid, 'to the other')
        expect(other, direct('to the other'), 'the original')
        w = expect(c, carbon('received', 'to the other'), 'a copy on the inline session')
        assert w.get('from') == bare(user), tostr(w)
    finally:
        c.close()
        other.close()
        k.close()


# ---- error replies, archive ids ------------------------------------------------

def error_reply(c, to, msg_id):
    c.send("<message to='%s' type='error' id='%s'><error type='cancel'>"
           "<service-unavailable xmlns='%s'/></error></message>" % (to, msg_id, NS_STANZAS))


def carbon_of_error(direction, msg_id):
    def match(e):
        if e.tag != q(NS_CLIENT, 'message'):
            return False
        m = inner(e, direction)
        return m is not None and m.get('type') == 'error' and m.get('id') == msg_id
    return match


def test_error_replies_copied(server):
    """XEP-0280 §6: an error that answers a message that qualified is
    copied too, both ways; an error that answers nothing known, or a
    message that did not qualify (<private/>), is not."""
    a = Account(server, carbons=('r2',))
    k, ku = contact(server)
    try:
        out, nope, priv, inc = (unique('m') for _ in range(4))
        # An error from the contact answering what r1 sent.
        a.r['r1'].send("<message to='%s' type='chat' id='%s'><body>answer me</body></message>" % (k.jid, out))
        expect(k, direct('answer me'), 'the contact gets it')
        error_reply(k, a.full('r1'), out)
        expect(a.r['r1'], lambda e: e.get('type') == 'error' and e.get('id') == out, 'the error itself')
        w = expect(a.r['r2'], carbon_of_error('received', out), 'received copy of the error')
        assert w.get('type') == 'error' and w.get('from') == bare(a.user), tostr(w)
        assert inner(w, 'received').get('from') == k.jid, tostr(w)
        # An error r1 sends answering what the contact sent.
        k.send("<message to='%s' type='chat' id='%s'><body>please bounce</body></message>" % (a.full('r1'), inc))
        expect(a.r['r1'], direct('please bounce'), 'r1 gets it')
        expect(a.r['r2'], carbon('received', 'please bounce'), 'copy on r2')
        error_reply(a.r['r1'], k.jid, inc)
        expect(k, lambda e: e.get('type') == 'error' and e.get('id') == inc, 'the contact gets the error')
        w = expect(a.r['r2'], carbon_of_error('sent', inc), 'sent copy of the error')
        assert inner(w, 'sent').get('to') == k.jid, tostr(w)
        # An error with an id nothing had, and one answering a private
        # message: no copies.
        error_reply(k, a.full('r1'), nope)
        a.r['r1'].send("<message to='%s' type='chat' id='%s'><body>secret</body><private xmlns='%s'/></message>"
                       % (k.jid, priv, NS_CARBONS))
        expect(k, direct('secret'), 'the private message')
        error_reply(k, a.full('r1'), priv)
        expect(a.r['r1'], lambda e: e.get('type') == 'error' and e.get('id') == priv, 'the private error')
        chat(k, a.full('r1'), 'marker')
        expect(a.r['r2'], carbon('received', 'marker'), 'marker copy')
        for e in a.r['r2'].received:
            if carbon_of_error('received', nope)(e) or carbon_of_error('received', priv)(e):
                raise AssertionError('an error answering nothing that qualified was copied: %s' % tostr(e))
    finally:
        a.close()
        k.close()


def test_sent_copy_names_the_archive_stanza_id(server):
    """The sender's archive keeps a sent message: the <sent/> copies carry
    its <stanza-id by='sender's bare JID'/> (the id the archive lists), and
    the message the contact gets does not."""
    from test_mam import NS_SID, archive, forwarded
    a = Account(server, carbons=('r2',))
    k, ku = contact(server)
    try:
        chat(a.r['r1'], k.jid, 'archived and copied')
        got = expect(k, direct('archived and copied'), 'the contact gets it')
        assert [s for s in got.findall(q(NS_SID, 'stanza-id')) if s.get('by') == bare(a.user)] == [], \
            'the sender archive id leaked to the contact: %s' % tostr(got)
        w = expect(a.r['r2'], carbon('sent', 'archived and copied'), 'sent copy')
        sids = [s.get('id') for s in inner(w, 'sent').findall(q(NS_SID, 'stanza-id'))
                if s.get('by') == bare(a.user)]
        assert len(sids) == 1 and sids[0], tostr(w)
        r3 = a.r['r3']
        r3.other = []
        mine = archive(r3)
        ids = {r.find('{urn:xmpp:mam:2}result').get('id'): forwarded(r).findtext(q(NS_CLIENT, 'body'))
               for r in mine}
        assert ids.get(sids[0]) == 'archived and copied', (sids, ids)
        # A message the archive does not keep (no body: a chat state) has none.
        a.r['r1'].send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/>"
                       "</message>" % k.jid)
        w = expect(a.r['r2'], lambda e: any_carbon(e) and inner(e, 'sent') is not None
                   and inner(e, 'sent').find('{http://jabber.org/protocol/chatstates}composing') is not None,
                   'sent copy of a chat state')
        assert inner(w, 'sent').find(q(NS_SID, 'stanza-id')) is None, tostr(w)
    finally:
        a.close()
        k.close()
