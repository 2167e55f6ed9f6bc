"""Routing between users: messages on one host and across hosts, iqs to full JIDs."""
from parleytest import HOST, OTHER, iq, login, logout, next_message, stanza_error, tostr, unique


def test_message_between_users_of_one_host(server, run):
    async def go():
        alice = await login(server, 'alice', resource='m1')
        bob = await login(server, 'bob', resource='m1')
        body = unique('hello bob ')
        alice.send_message(mto='bob@' + HOST, mbody=body, mtype='chat')
        m = await next_message(bob, pred=lambda m: m['body'] == body)
        assert m['from'].bare == 'alice@' + HOST
        assert m['from'].resource == 'm1'
        assert m['to'].bare == 'bob@' + HOST
        # and back, to the full JID
        reply = unique('hi alice ')
        bob.send_message(mto=str(alice.boundjid), mbody=reply, mtype='chat')
        m = await next_message(alice, pred=lambda m: m['body'] == reply)
        assert m['from'] == bob.boundjid
        await logout(alice, bob)
    run(go())


def test_message_to_user_of_other_host(server, run):
    async def go():
        alice = await login(server, 'alice', resource='x1')
        dave = await login(server, 'dave', host=OTHER, resource='x1')
        body = unique('across hosts ')
        alice.send_message(mto='dave@' + OTHER, mbody=body, mtype='chat')
        m = await next_message(dave, pred=lambda m: m['body'] == body)
        assert m['from'] == alice.boundjid
        back = unique('and back ')
        dave.send_message(mto=str(alice.boundjid), mbody=back, mtype='chat')
        m = await next_message(alice, pred=lambda m: m['body'] == back)
        assert m['from'] == dave.boundjid
        await logout(alice, dave)
    run(go())


def test_ping_to_full_jid_is_answered(server, run):
    async def go():
        alice = await login(server, 'alice', resource='p1')
        bob = await login(server, 'bob', resource='p1')
        bob.register_plugin('xep_0199')     # answers urn:xmpp:ping
        el = await iq(alice, 'get', str(bob.boundjid), "<ping xmlns='urn:xmpp:ping'/>")
        assert el.get('type') == 'result', tostr(el)
        assert el.get('from') == str(bob.boundjid)
        await logout(alice, bob)
    run(go())


def test_iq_to_offline_resource_service_unavailable(server, run):
    async def go():
        alice = await login(server, 'alice', resource='o1')
        el = await iq(alice, 'get', 'bob@%s/no-such-resource' % HOST, "<ping xmlns='urn:xmpp:ping'/>")
        assert stanza_error(el) == 'service-unavailable', tostr(el)
        await logout(alice)
    run(go())


def test_iq_to_nonexistent_user_service_unavailable(server, run):
    async def go():
        alice = await login(server, 'alice', resource='o2')
        el = await iq(alice, 'get', 'nobody-here@%s/res' % HOST, "<ping xmlns='urn:xmpp:ping'/>")
        assert stanza_error(el) == 'service-unavailable', tostr(el)
        await logout(alice)
    run(go())


def test_iq_to_bare_jid_of_nonexistent_user(server, raw):
    """RFC 6121 §8.5.1: an iq to the bare JID of an account that does not
    exist gets <service-unavailable/>, whatever its payload; one to an
    account with no session is answered by the handlers as before."""
    a = raw()
    a.login('alice', server.password('alice'), resource=unique('nx'))
    server.register('offline-' + a.jid.split('/')[1], HOST, 'pw-x')
    payloads = ("<ping xmlns='urn:xmpp:ping'/>", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                "<vCard xmlns='vcard-temp'/>", "<query xmlns='jabber:iq:last'/>")
    for p in payloads:
        el = a.iq('get', p, to='nobody-here@%s' % HOST)
        assert stanza_error(el) == 'service-unavailable', (p, tostr(el))
    for p in payloads[:3]:
        el = a.iq('get', p, to='offline-%s@%s' % (a.jid.split('/')[1], HOST))
        assert el.get('type') == 'result', (p, tostr(el))
    # the user's own account, with no other session: its own handlers
    el = a.iq('get', payloads[1], to='alice@%s' % HOST)
    assert el.get('type') == 'result', tostr(el)


def test_message_to_a_resource_that_is_gone(server, raw):
    """RFC 6121 §8.5.3.2.1, no session with that resource but another one:
    a chat message goes to the user as if sent to the bare JID; a normal
    message (no type) is refused with <service-unavailable/>; a headline
    is dropped; the other session gets neither."""
    a, b = raw(), raw()
    a.login('alice', server.password('alice'), resource=unique('gone-a'))
    b.login('bob', server.password('bob'), resource=unique('gone-b'))
    gone = 'bob@%s/%s' % (HOST, unique('gone-'))
    normal, headline, chat = unique('normal-'), unique('headline-'), unique('chat-')
    a.send("<message to='%s' id='n1'><body>%s</body></message>" % (gone, normal))
    a.send("<message to='%s' type='headline'><body>%s</body></message>" % (gone, headline))
    a.send("<message to='%s' type='chat'><body>%s</body></message>" % (gone, chat))
    err = a.wait_for(lambda e: e.get('id') == 'n1', what='the error for the normal message')
    assert stanza_error(err) == 'service-unavailable', tostr(err)
    m = b.wait_for(lambda e: e.tag.endswith('}message'), what='a message')
    assert m.findtext('{jabber:client}body') == chat, tostr(m)


def test_message_with_spoofed_from_is_not_delivered_as_spoofed(server, raw):
    """RFC 6120 8.1.2.1: the server stamps 'from' with the sender's full JID
    (or refuses the stanza with <invalid-from/>); never delivers the lie."""
    a, b = raw(), raw()
    ja = a.login('alice', server.password('alice'), resource='spoof')
    jb = b.login('bob', server.password('bob'), resource='spoof')
    body = unique('stamped ')
    a.send("<message from='bob@%s/evil' to='%s' type='chat'><body>%s</body></message>" % (HOST, jb, body))
    try:
        m = b.wait_message(body, timeout=3)
    except TimeoutError:
        assert a.stream_error() == 'invalid-from'
        return
    assert m.get('from') == ja, tostr(m)
