"""Client state indication (XEP-0352): the stream feature; while a session
is inactive, presence updates (the latest per contact) and chat states
wait, messages with a body, receipts, subscription requests and iqs come at once
(after what waited); <active/> writes what waited; a full queue (100 by
default) is written at once; other users and the user's other sessions
are not affected; a session resumed with stream management (XEP-0198) is
active again and gets what waited after what was sent again.  Every test
registers fresh users.

Absence is checked after a round trip of the contact (its stanzas were
routed) and one of the inactive session that the stream answers itself
(<session/>): whatever was written to it before comes before that answer."""

import time

from parleytest import HOST, NS_CLIENT, RawClient, find_lines, q, tostr, unique
from test_presence import bare, expect, make_mutual, new_user, online
from test_sm import NS_SM, SMClient, sm_tag

NS_CSI = 'urn:xmpp:csi:0'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session'


# ---- helpers ----------------------------------------------------------------

def sync(c):
    """A round trip that no hook sees: earlier output is read after it."""
    r = c.iq('set', "<session xmlns='%s'/>" % NS_SESSION)
    assert r.get('type') == 'result', tostr(r)


def ping(c):
    r = c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert r.get('type') == 'result', tostr(r)


def mark(c):
    """How many elements c has read so far."""
    return len(c.received)


def since(c, n, pred):
    return [e for e in c.received[n:] if pred(e)]


def go_inactive(u):
    """u says it is inactive; returns mark(u) once the server knows."""
    u.send("<inactive xmlns='%s'/>" % NS_CSI)
    sync(u)
    return mark(u)


def presence_from(jid):
    def match(e):
        return e.tag == q(NS_CLIENT, 'presence') and e.get('from') == jid
    return match


def chatstate(e):
    return e.tag == q(NS_CLIENT, 'message') and any(
        c.tag.startswith('{%s}' % NS_CHATSTATES) for c in e)


def body(text):
    def match(e):
        return e.tag == q(NS_CLIENT, 'message') and e.findtext(q(NS_CLIENT, 'body')) == text
    return match


def show(c, value):
    c.send('<presence><show>%s</show></presence>' % value)


def state(c, to, name='composing'):
    c.send("<message to='%s' type='chat'><%s xmlns='%s'/></message>" % (to, name, NS_CHATSTATES))


def pair(server):
    """u and a contact k, subscribed both ways, both online; u.twin is a
    second session of u's user that stays active."""
    uu, ku = new_user(server, 'cs'), new_user(server, 'ck')
    u, k = online(server, uu), online(server, ku)
    make_mutual(u, uu, k, ku)
    u.twin = online(server, uu)
    expect(u.twin, presence_from(k.jid), 'presence of the contact on the twin')
    return u, uu, k, ku


def broadcast_done(u, jid, show=None, typ=None):
    """The broadcast of jid's presence (show, type) has been through the
    session manager: u's twin got it (presence broadcasts run after a
    roster read, so a round trip of the sender does not tell)."""
    def match(e):
        return (presence_from(jid)(e) and e.get('type') == typ
                and e.findtext(q(NS_CLIENT, 'show')) == show)
    expect(u.twin, match, 'presence %s/%s of %s on the twin' % (show, typ, jid))


def close(*cs):
    for c in cs:
        if getattr(c, 'twin', None) is not None:
            c.twin.close()
        c.close()


# ---- tests ------------------------------------------------------------------

def test_stream_feature(server):
    c = RawClient(server.port)
    try:
        c.open()
        c.starttls()
        assert c.features.find(q(NS_CSI, 'csi')) is None, tostr(c.features)
    finally:
        c.close()
    c = RawClient(server.port)
    try:
        user = new_user(server, 'cs')
        c.login(user, server.password(user), presence=False)
        assert c.features.find(q(NS_CSI, 'csi')) is not None, tostr(c.features)
    finally:
        c.close()


def test_inactive_holds_presence_and_chat_states(server):
    u, uu, k, ku = pair(server)
    try:
        n = go_inactive(u)
        show(k, 'away')
        state(k, u.jid, 'composing')
        show(k, 'dnd')
        state(k, u.jid, 'paused')
        show(k, 'xa')
        ping(k)
        broadcast_done(u, k.jid, 'xa')
        sync(u)
        assert not since(u, n, presence_from(k.jid)), u.received[n:]
        assert not since(u, n, chatstate), u.received[n:]
        # An iq comes at once, after what waited.
        k.send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % u.jid)
        expect(u, lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'v1', 'iq at once')
        got = u.received[n:]
        pres = [e for e in got if presence_from(k.jid)(e)]
        assert len(pres) == 1 and pres[0].findtext(q(NS_CLIENT, 'show')) == 'xa', [tostr(e) for e in got]
        states = [e for e in got if chatstate(e)]
        assert [list(e)[0].tag for e in states] == [
            '{%s}composing' % NS_CHATSTATES, '{%s}paused' % NS_CHATSTATES], [tostr(e) for e in got]
        iq_at = next(i for i, e in enumerate(got) if e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'v1')
        assert got.index(pres[0]) < iq_at and got.index(states[-1]) < iq_at
    finally:
        close(u, k)


def test_body_and_subscription_come_at_once(server):
    u, uu, k, ku = pair(server)
    stranger = online(server, new_user(server, 'cx'))
    try:
        n = go_inactive(u)
        show(k, 'away')
        broadcast_done(u, k.jid, 'away')
        k.send("<message to='%s' type='chat'><body>wake up</body>"
               "<active xmlns='%s'/></message>" % (u.jid, NS_CHATSTATES))
        expect(u, body('wake up'), 'a message with a body, while inactive')
        got = u.received[n:]
        p = [e for e in got if presence_from(k.jid)(e)]
        assert len(p) == 1 and got.index(p[0]) < got.index(next(e for e in got if body('wake up')(e)))
        # A receipt records something: it comes at once too.
        k.send("<message to='%s'><received xmlns='urn:xmpp:receipts' id='m1'/></message>" % u.jid)
        expect(u, lambda e: e.find('{urn:xmpp:receipts}received') is not None, 'a receipt, while inactive')
        # A subscription request is something the user must see.
        stranger.send("<presence to='%s' type='subscribe'/>" % bare(uu))
        expect(u, lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe',
               'subscription request while inactive')
    finally:
        close(u, k, stranger)


def test_active_writes_latest_presence_per_contact(server):
    u, uu, k, ku = pair(server)
    k2u = new_user(server, 'ck')
    k2 = online(server, k2u)
    make_mutual(u, uu, k2, k2u)
    expect(u.twin, presence_from(k2.jid), 'presence of k2 on the twin')
    try:
        n = go_inactive(u)
        show(k, 'away')
        show(k2, 'dnd')
        show(k, 'chat')
        k2.send("<presence type='unavailable'/>")
        broadcast_done(u, k.jid, 'chat')
        broadcast_done(u, k2.jid, typ='unavailable')
        sync(u)
        assert not since(u, n, lambda e: e.tag == q(NS_CLIENT, 'presence')), u.received[n:]
        u.send("<active xmlns='%s'/>" % NS_CSI)
        sync(u)
        p1 = since(u, n, presence_from(k.jid))
        p2 = since(u, n, presence_from(k2.jid))
        assert len(p1) == 1 and p1[0].findtext(q(NS_CLIENT, 'show')) == 'chat', [tostr(e) for e in p1]
        assert len(p2) == 1 and p2[0].get('type') == 'unavailable', [tostr(e) for e in p2]
        # Active again: presence comes at once.
        n = mark(u)
        show(k, 'away')
        expect(u, presence_from(k.jid), 'presence once active')
    finally:
        close(u, k, k2)


def test_full_queue_is_written(server):
    u, uu, k, ku = pair(server)
    try:
        n = go_inactive(u)
        for i in range(99):
            state(k, u.jid, 'composing' if i % 2 else 'paused')
        ping(k)
        sync(u)
        assert not since(u, n, chatstate), 'a queue below its bound was written'
        state(k, u.jid, 'active')  # the 100th
        ping(k)
        sync(u)
        got = since(u, n, chatstate)
        assert len(got) == 100, len(got)
        assert list(got[-1])[0].tag == '{%s}active' % NS_CHATSTATES
        # Still inactive: queuing goes on.
        n = mark(u)
        state(k, u.jid, 'gone')
        ping(k)
        sync(u)
        assert not since(u, n, chatstate)
    finally:
        close(u, k)


def test_others_not_affected(server):
    """The user's other session and other users get presence at once; the
    inactive session's queue dies with its connection."""
    u, uu, k, ku = pair(server)
    u2 = u.twin
    try:
        n = go_inactive(u)
        show(k, 'away')
        broadcast_done(u, k.jid, 'away')
        show(u2, 'dnd')
        expect(k, presence_from(u2.jid), 'the contact gets presence at once')
        ping(k)
        sync(u)
        assert not since(u, n, presence_from(k.jid))
        state(k, u.jid)
        ping(k)
    finally:
        close(u, k)  # u with a queue: dropped
    # The server is still fine.
    c = online(server, new_user(server, 'cs'))
    c.close()


def test_carbon_copies_of_chat_states_wait(server):
    """u enabled carbons and is inactive: the copy of a chat state its twin
    received waits, the copy of a message with a body comes at once, after
    it."""
    u, uu, k, ku = pair(server)
    try:
        r = u.iq('set', "<enable xmlns='urn:xmpp:carbons:2'/>")
        assert r.get('type') == 'result', tostr(r)
        n = go_inactive(u)
        state(k, u.twin.jid, 'composing')
        ping(k)
        sync(u)
        assert not since(u, n, lambda e: e.tag == q(NS_CLIENT, 'message')), u.received[n:]
        k.send("<message to='%s' type='chat'><body>copied</body></message>" % u.twin.jid)
        expect(u, lambda e: e.tag == q(NS_CLIENT, 'message') and 'copied' in tostr(e), 'copy with a body')
        got = since(u, n, lambda e: e.tag == q(NS_CLIENT, 'message'))
        assert len(got) == 2 and 'composing' in tostr(got[0]) and 'copied' in tostr(got[1]), \
            [tostr(e) for e in got]
    finally:
        close(u, k)


def test_a_resumed_session_is_active(server):
    """XEP-0352 §4.2: a stream begins active, and the state is not restored
    on resumption.  What waited for the inactive session (before and while
    its connection was gone) was never written to any connection: it comes
    on the resumed stream after the stanzas sent again, in order, and what
    comes next is written at once."""
    u, uu, k, ku = pair(server)
    a = SMClient(server)
    c = SMClient(server)
    try:
        enabled = a.sm_login(uu, resource=unique('phone-'))
        go_inactive(a)
        h = a.h  # what the resumption acknowledges
        k.send("<message to='%s' type='chat'><body>not acknowledged</body></message>" % a.jid)
        a.wait_message('not acknowledged')
        state(k, a.jid, 'composing')
        ping(k)
        a.kill()
        deadline = time.monotonic() + 10
        while not find_lines('connection of %s lost' % a.jid, server.log()):
            assert time.monotonic() < deadline, 'the server did not see the drop'
            time.sleep(0.1)
        show(k, 'dnd')
        broadcast_done(u, k.jid, 'dnd')
        state(k, a.jid, 'paused')
        ping(k)
        c.auth(uu)
        c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, enabled.get('id'), h))
        el = c.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
        assert el.tag == sm_tag('resumed'), tostr(el)
        n = c.received.index(el) + 1
        sync(c)

        def what(e):
            if body('not acknowledged')(e):
                return 'not acknowledged'
            if chatstate(e):
                return list(e)[0].tag.split('}')[1]
            if presence_from(k.jid)(e) and e.findtext(q(NS_CLIENT, 'show')) == 'dnd':
                return 'dnd'
            return None
        got = [what(e) for e in c.received[n:] if what(e) is not None]
        assert got == ['not acknowledged', 'composing', 'dnd', 'paused'], [tostr(e) for e in c.received[n:]]
        # Active: presence and chat states come at once.
        c.claimed = set(id(e) for e in c.received)
        show(k, 'away')
        expect(c, lambda e: presence_from(k.jid)(e) and e.findtext(q(NS_CLIENT, 'show')) == 'away',
               'presence on the resumed stream')
        state(k, a.jid, 'gone')
        expect(c, chatstate, 'chat state on the resumed stream')
    finally:
        c.close()
        close(u, k)


# ---- a real client library ----------------------------------------------------

def test_slixmpp_csi(server, run):
    """slixmpp's XEP-0352 plugin finds the feature; chat states wait while
    it is inactive and come, in order, before a message with a body."""
    import asyncio
    from parleytest import iq, login as slix_login, logout

    user = new_user(server, 'cs')
    k = online(server, new_user(server, 'ck'))

    async def go():
        c = await slix_login(server, user, resource='app', plugins=('xep_0352',))
        seen = []  # every message read (the 'message' event is for bodies only)

        def inbound(stanza):
            if stanza.xml.tag == q(NS_CLIENT, 'message'):
                seen.append(stanza.xml)
            return stanza
        c.add_filter('in', inbound)
        try:
            assert c['xep_0352'].enabled, 'slixmpp found no <csi/> feature'
            c['xep_0352'].send_inactive()
            r = await iq(c, 'set', None, "<session xmlns='%s'/>" % NS_SESSION)
            assert r.get('type') == 'result'
            to = '%s/app' % bare(user)
            state(k, to, 'composing')
            state(k, to, 'paused')
            ping(k)
            r = await iq(c, 'set', None, "<session xmlns='%s'/>" % NS_SESSION)
            assert r.get('type') == 'result'
            await asyncio.sleep(0.2)
            assert seen == [], [tostr(m) for m in seen]
            k.send("<message to='%s' type='chat'><body>now</body></message>" % to)
            for _ in range(100):
                if len(seen) >= 3:
                    break
                await asyncio.sleep(0.05)
            what = [m.findtext(q(NS_CLIENT, 'body')) or list(m)[0].tag.split('}')[1] for m in seen]
            assert what == ['composing', 'paused', 'now'], [tostr(m) for m in seen]
        finally:
            await logout(c)
    try:
        run(go())
    finally:
        k.close()
