"""Entity capabilities (XEP-0115, module caps): the server asks a client
about the caps it announces once per ver (a disco#info request from the
server's JID with node 'node#ver'), and a second client announcing the
same ver is not asked; an answer that does not match its ver is not
cached (a second client announcing that ver is asked again) and is
logged with the JID and the ver."""
import asyncio
import base64
import hashlib

from parleytest import (HOST, NS_CLIENT, NS_DISCO_INFO, RawClient, find_lines, login, logout, q,
                        unique)

NS_CAPS = 'http://jabber.org/protocol/caps'


# ---- a slixmpp client with caps -----------------------------------------

def watch_caps_requests(client):
    """Record the disco#info requests the server sends to client (their
    node attributes) in client.caps_requests."""
    client.caps_requests = []

    def inbound(stanza):
        xml = stanza.xml
        query = xml.find(q(NS_DISCO_INFO, 'query'))
        if (xml.tag == q(NS_CLIENT, 'iq') and xml.get('type') == 'get' and query is not None
                and xml.get('from') == HOST):
            client.caps_requests.append(query.get('node'))
        return stanza
    client.add_filter('in', inbound)


async def caps_client(server, user):
    async def prepare(c):
        watch_caps_requests(c)
        await c['xep_0115'].update_caps(broadcast=False)
    return await login(server, user, plugins=('xep_0030', 'xep_0115'), prepare=prepare)


async def settle(client, rounds=3):
    """Ping round trips, so that what the server sent meanwhile was read and
    the client's answers were processed."""
    for _ in range(rounds):
        await client['xep_0030'].get_info(jid=HOST, timeout=10)
        await asyncio.sleep(0.1)


def test_asked_once_per_ver(server, run):
    async def go():
        alice = await caps_client(server, 'alice')
        await settle(alice)
        ver = await alice['xep_0115'].get_verstring(alice.boundjid)
        assert ver, 'the client announced no caps'
        node = alice['xep_0115'].caps_node + '#' + ver
        assert alice.caps_requests == [node]
        # bob's client is the same program: the same ver, already known
        bob = await caps_client(server, 'bob')
        await settle(bob)
        await settle(alice)
        assert bob.caps_requests == []
        assert alice.caps_requests == [node]
        await logout(alice, bob)
    run(go())
    log = server.log()
    assert not find_lines(r'does not verify', log), 'the slixmpp answer did not verify'


# ---- a raw client whose answer does not match -----------------------------

SIMPLE_FEATURES = ('http://jabber.org/protocol/caps', 'http://jabber.org/protocol/disco#info',
                   'http://jabber.org/protocol/disco#items', 'http://jabber.org/protocol/muc')


def ver_of(features):
    s = 'client/pc//Raw<' + ''.join(f + '<' for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def announce(c, node, ver):
    c.send("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>" % (NS_CAPS, node, ver))


def caps_request(c, node, ver, timeout=5):
    return c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('type') == 'get'
                      and e.get('from') == HOST and e.find(q(NS_DISCO_INFO, 'query')) is not None
                      and e.find(q(NS_DISCO_INFO, 'query')).get('node') == '%s#%s' % (node, ver),
                      timeout=timeout, what='disco#info request about %s' % ver)


def no_caps_request(c, wait=1.0):
    try:
        e = c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('type') == 'get'
                       and e.find(q(NS_DISCO_INFO, 'query')) is not None, timeout=wait)
    except TimeoutError:
        return
    raise AssertionError('unexpected disco#info request: %r' % e.attrib)


def answer(c, req, features):
    node = req.find(q(NS_DISCO_INFO, 'query')).get('node')
    c.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>"
           "<identity category='client' type='pc' name='Raw'/>%s</query></iq>"
           % (req.get('id'), HOST, NS_DISCO_INFO, node,
              ''.join("<feature var='%s'/>" % f for f in features)))
    # a round trip: the answer was handled before the test goes on
    c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)


def test_mismatch_not_cached(server):
    node = 'https://parley.example/' + unique('raw')
    ver = ver_of(SIMPLE_FEATURES)
    with RawClient(server.port) as a, RawClient(server.port) as b, RawClient(server.port) as c:
        a.login('alice', server.password('alice'), resource=unique('a'), presence=False)
        b.login('bob', server.password('bob'), resource=unique('b'), presence=False)
        c.login('carol', server.password('carol'), resource=unique('c'), presence=False)
        # a announces ver and answers with one feature more than it says
        announce(a, node, ver)
        req = caps_request(a, node, ver)
        answer(a, req, SIMPLE_FEATURES + ('urn:xmpp:poison',))
        # b announces the same ver: asked again, since nothing was cached
        announce(b, node, ver)
        req = caps_request(b, node, ver)
        answer(b, req, SIMPLE_FEATURES)
        # now it is known: c is not asked
        announce(c, node, ver)
        c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        no_caps_request(c)
    lines = find_lines(r'does not verify', server.log())
    assert any(ver in line and 'alice@%s/' % HOST in line for line in lines), lines


def test_status_shows_caps(server):
    r = server.ctl('status')
    assert r.returncode == 0, r.stderr
    lines = find_lines(r'^  caps: ', r.stdout)
    assert lines and 'verified' in lines[0], r.stdout
