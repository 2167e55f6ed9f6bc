"""XMPP over WebSocket (RFC 7395) on the http listener: the upgrade and its
refusals, logins with PLAIN (over TLS) and SCRAM, resource binding, stream
management, messages and presence with a slixmpp client on TCP both ways,
a real WebSocket client library (python3-websockets), fragmented and
pipelined input; and bad input: an unmasked frame (close 1002), an
oversized message (1009), bad UTF-8 (1007), a binary message (1003) and
bad XML (a stream error, then <close/>), each while another session goes
on working."""
import asyncio
import base64
import ssl

import pytest

import parleytest
import scramclient
from parleytest import (HOST, NS_BIND, NS_CLIENT, NS_PING, NS_SASL, NS_STREAM, Witness, q, tostr,
                        unique)
from wsclient import NS_FRAMING, OP_BINARY, OP_CONT, OP_PING, OP_TEXT, HandshakeRefused, WsClient, frame

NS_SM = 'urn:xmpp:sm:3'


class WsParleyd(parleytest.Parleyd):
    """parleyd with a plain and a TLS http listener."""

    def write_config(self):
        super().write_config()
        self.http_port = parleytest.free_port()
        self.https_port = parleytest.free_port()
        text = self.config.read_text()
        listen = ('listen:\n'
                  '  - port: %d\n    address: 127.0.0.1\n    module: http\n'
                  '  - port: %d\n    address: 127.0.0.1\n    module: http\n    direct_tls: true\n'
                  % (self.http_port, self.https_port))
        text = text.replace('listen:\n', listen, 1)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    s = WsParleyd(tmp_path_factory.mktemp('ws'))
    s.start()
    s.create_users()
    yield s
    s.finish()


def wss(srv, **kw):
    return WsClient(srv.https_port, tls=True, **kw)


@pytest.fixture
def witness(srv):
    """A WebSocket session and two TCP sessions that must keep working."""
    w = Witness(srv)
    c = wss(srv)
    c.login('bob', srv.password('bob'), resource=unique('ws-witness-'))

    def check():
        w.check()
        body = unique('ws-alive-')
        w.a.send("<message to='%s' type='chat'><body>%s</body></message>" % (c.jid, body))
        got = c.wait_message(body, timeout=10)
        assert got.get('from') == w.a.jid
    w.ws = c
    w.check_all = check
    yield w
    c.close()
    w.close()


# ---- the upgrade ---------------------------------------------------------------

def test_upgrade_refusals(srv):
    with pytest.raises(HandshakeRefused) as e:
        WsClient(srv.http_port, protocol=None)
    assert e.value.status == 400 and b'xmpp' in e.value.response or e.value.status == 400
    with pytest.raises(HandshakeRefused) as e:
        WsClient(srv.http_port, protocol='chat, superchat')
    assert e.value.status == 400
    with pytest.raises(HandshakeRefused) as e:
        WsClient(srv.http_port, version='8')
    assert e.value.status == 426
    with pytest.raises(HandshakeRefused) as e:
        WsClient(srv.http_port, path='/elsewhere')
    assert e.value.status == 404
    # offered among others: accepted
    c = WsClient(srv.http_port, protocol='chat, xmpp')
    c.open()
    assert c.header['from'] == HOST
    c.close()


# ---- logins --------------------------------------------------------------------

def test_plain_over_tls_bind_and_ping(srv):
    c = wss(srv)
    f = c.open()
    assert 'PLAIN' in c.mechanisms(), tostr(f)
    assert f.find(q('urn:ietf:params:xml:ns:xmpp-tls', 'starttls')) is None
    assert c.header['version'] == '1.0' and c.header['from'] == HOST
    r = c.auth_plain('alice', srv.password('alice'))
    assert r.tag == q(NS_SASL, 'success')
    f = c.open()
    assert f.find(q(NS_BIND, 'bind')) is not None
    jid = c.bind('web')
    assert jid == 'alice@%s/web' % HOST
    answer = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    assert answer.get('type') == 'result'
    # every message is a standalone element in jabber:client
    assert answer.tag == q(NS_CLIENT, 'iq')
    c.send("<close xmlns='%s'/>" % NS_FRAMING)
    el = c.next()
    assert el is not None and el.tag == q(NS_FRAMING, 'close'), tostr(el)
    assert c.wait_close_code() == 1000
    c.close()


def test_scram_over_plain_ws(srv):
    c = WsClient(srv.http_port)
    c.open()
    mechs = c.mechanisms()
    assert 'SCRAM-SHA-256' in mechs and 'PLAIN' not in mechs  # no TLS: no PLAIN
    out = scramclient.scram(c, 'carol', srv.password('carol'), 'SCRAM-SHA-256', 'n,,', check_ssdp=False)
    assert out.ok, tostr(out.el)
    c.open()
    assert c.bind() .startswith('carol@%s/' % HOST)
    c.close()


def test_wrong_password_then_other_sessions_fine(srv, witness):
    c = wss(srv)
    c.open()
    r = c.auth_plain('alice', 'not-her-password')
    assert r.tag == q(NS_SASL, 'failure')
    c.close()
    witness.check_all()


def test_pipelined_login_in_one_write(srv):
    """Input pauses while the password is checked; the messages that came
    meanwhile wait and are handled in order."""
    c = wss(srv)
    token = base64.b64encode(b'\0alice\0' + srv.password('alice').encode()).decode()
    c.send_frame(frame(OP_TEXT, "<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, HOST)) +
                 frame(OP_TEXT, "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token)) +
                 frame(OP_TEXT, "<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, HOST)) +
                 frame(OP_TEXT, "<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='%s'>"
                       "<resource>piped</resource></bind></iq>" % NS_BIND))
    el = c.wait_iq('b1')
    assert el.get('type') == 'result', tostr(el)
    c.close()


def test_fragmented_message_and_ping(srv):
    c = wss(srv)
    c.login('alice', srv.password('alice'), resource='frag', presence=False)
    stanza = "<iq type='get' id='f1' to='%s'><ping xmlns='%s'/></iq>" % (HOST, NS_PING)
    a, b, rest = stanza[:10], stanza[10:30], stanza[30:]
    c.send_frame(frame(OP_TEXT, a, fin=False) + frame(OP_PING, b'hello') +
                 frame(OP_CONT, b, fin=False) + frame(OP_CONT, rest))
    el = c.wait_iq('f1')
    assert el.get('type') == 'result'
    assert c.pongs == [b'hello']
    c.close()


def test_empty_and_whitespace_messages_ignored(srv):
    # an empty text message (wslay hands it on with no buffer) is nothing,
    # as a whitespace one is: the stream goes on
    c = wss(srv)
    c.login('alice', srv.password('alice'), resource='empty', presence=False)
    stanza = "<iq type='get' id='e1' to='%s'><ping xmlns='%s'/></iq>" % (HOST, NS_PING)
    c.send_frame(frame(OP_TEXT, b'') + frame(OP_TEXT, ' \n') + frame(OP_TEXT, stanza))
    el = c.wait_iq('e1')
    assert el.get('type') == 'result', tostr(el)
    c.close()


def test_stream_management(srv):
    c = wss(srv)
    c.login('alice', srv.password('alice'), resource='sm', presence=False)
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    el = c.wait_for(lambda e: e.tag in (q(NS_SM, 'enabled'), q(NS_SM, 'failed')))
    assert el.tag == q(NS_SM, 'enabled') and el.get('id'), tostr(el)
    c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    c.send("<r xmlns='%s'/>" % NS_SM)
    a = c.wait_for(lambda e: e.tag == q(NS_SM, 'a'))
    assert a.get('h') == '1', tostr(a)
    c.close()


def test_resume_after_dropped_connection(srv):
    """A WebSocket connection that drops (no <close/>) leaves a resumable
    session; a new WebSocket connection resumes it and gets what was not
    acknowledged."""
    bob = parleytest.RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    a = wss(srv)
    jid = a.login('alice', srv.password('alice'), resource=unique('ws-resume-'), presence=False)
    a.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    enabled = a.wait_for(lambda e: e.tag == q(NS_SM, 'enabled'))
    for i in range(2):
        bob.send("<message to='%s' type='chat'><body>before-%d</body></message>" % (jid, i))
    a.wait_message('before-1')
    a.sock.close()  # dropped, no close frame
    bob.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    bob.send("<message to='%s' type='chat'><body>while-away</body></message>" % jid)
    bob.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    c = wss(srv)
    c.open()
    assert c.auth_plain('alice', srv.password('alice')).tag == q(NS_SASL, 'success')
    c.open()
    c.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, enabled.get('id')))
    el = c.wait_for(lambda e: e.tag in (q(NS_SM, 'resumed'), q(NS_SM, 'failed')))
    assert el.tag == q(NS_SM, 'resumed'), tostr(el)
    for body in ('before-0', 'before-1', 'while-away'):
        c.wait_message(body)
    c.send("<message to='%s' type='chat'><body>back</body></message>" % bob.jid)
    assert bob.wait_message('back').get('from') == jid
    c.close()
    bob.close()


# ---- with slixmpp on TCP --------------------------------------------------------

def test_messages_and_presence_with_slixmpp(srv):
    ws = wss(srv)
    ws_jid = ws.login('alice', srv.password('alice'), resource='browser')

    async def run():
        bob = await parleytest.login(srv, 'bob', resource='desktop')
        try:
            presences = asyncio.Queue()
            bob.add_event_handler('presence_available', presences.put_nowait)
            # WebSocket -> TCP
            body = unique('to-bob-')
            await asyncio.to_thread(ws.send, "<message to='%s' type='chat'><body>%s</body></message>"
                                    % (bob.boundjid.full, body))
            m = await parleytest.next_message(bob, pred=lambda m: m['body'] == body)
            assert m['from'].full == ws_jid
            # TCP -> WebSocket
            body = unique('to-alice-')
            bob.send_message(mto=ws_jid, mbody=body, mtype='chat')
            got = await asyncio.to_thread(ws.wait_message, body, 10)
            assert got.get('from') == bob.boundjid.full
            # directed presence, both ways
            await asyncio.to_thread(ws.send, "<presence to='%s'><status>on the web</status></presence>"
                                    % bob.boundjid.full)
            p = await asyncio.wait_for(presences.get(), 10)
            while p['from'].full != ws_jid:
                p = await asyncio.wait_for(presences.get(), 10)
            assert p['status'] == 'on the web'
            bob.send_presence(pto=ws_jid, pstatus='at my desk')
            got = await asyncio.to_thread(
                ws.wait_for, lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('from') == bob.boundjid.full)
            assert got.findtext(q(NS_CLIENT, 'status')) == 'at my desk'
        finally:
            await parleytest.logout(bob)
    asyncio.run(run())
    ws.close()


def test_websockets_library_client(srv):
    """python3-websockets, a client written by others, against the endpoint."""
    import websockets

    async def run():
        ctx = parleytest.tls_context()
        async with websockets.connect('wss://127.0.0.1:%d/xmpp-websocket' % srv.https_port,
                                      subprotocols=['xmpp'], ssl=ctx) as w:
            assert w.subprotocol == 'xmpp'
            await w.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, HOST))
            assert (await w.recv()).startswith("<open xmlns='%s'" % NS_FRAMING)
            assert 'PLAIN' in await w.recv()
            token = base64.b64encode(b'\0erin\0' + srv.password('erin').encode()).decode()
            await w.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
            assert 'success' in await w.recv()
            await w.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, HOST))
            await w.recv()
            await w.recv()
            await w.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='%s'/></iq>" % NS_BIND)
            assert 'erin@' in await w.recv()
            await w.send("<close xmlns='%s'/>" % NS_FRAMING)
            assert 'close' in await w.recv()
            await w.wait_closed()
            assert w.close_code == 1000
    asyncio.run(run())


def test_frame_lengths_to_library_client(srv):
    """Messages whose frames need each of RFC 6455's three length forms (7
    bits, 16 bits, 64 bits: a body of '>' grows fourfold when escaped),
    read by python3-websockets, which checks the framing."""
    import websockets
    import xml.etree.ElementTree as ET
    bodies = ['a' * 50, 'b' * 3000, '>' * 30000]

    async def run():
        ctx = parleytest.tls_context()
        async with websockets.connect('wss://127.0.0.1:%d/xmpp-websocket' % srv.https_port,
                                      subprotocols=['xmpp'], ssl=ctx, max_size=1 << 20) as w:
            await w.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, HOST))
            await w.recv()
            await w.recv()
            token = base64.b64encode(b'\0erin\0' + srv.password('erin').encode()).decode()
            await w.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
            assert 'success' in await w.recv()
            await w.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, HOST))
            await w.recv()
            await w.recv()
            await w.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='%s'>"
                         "<resource>frames</resource></bind></iq>" % NS_BIND)
            assert 'erin@' in await w.recv()
            await w.send("<presence xmlns='jabber:client'/>")
            sender = parleytest.RawClient(srv.tls_port, direct_tls=True, timeout=10)
            sender.login('alice', srv.password('alice'), resource=unique('frames-'), presence=False)
            for b in bodies:  # '>' is fine unescaped in text
                sender.send("<message to='erin@%s/frames' type='chat'><body>%s</body></message>"
                            % (HOST, b))
            got, sizes = [], []
            while len(got) < len(bodies):
                text = await asyncio.wait_for(w.recv(), 10)
                el = ET.fromstring(text)
                if el.tag == q(NS_CLIENT, 'message'):
                    got.append(el.findtext(q(NS_CLIENT, 'body')))
                    sizes.append(len(text.encode()))
            sender.close()
            assert got == bodies
            # (<success/> above came in a 7-bit frame)
            assert 125 < sizes[0] < sizes[1] <= 65535 < sizes[2], sizes
            await w.send("<close xmlns='%s'/>" % NS_FRAMING)
            await w.recv()
            await w.wait_closed()
            assert w.close_code == 1000
    asyncio.run(run())


# ---- bad input -------------------------------------------------------------------

def logged_in(srv):
    c = wss(srv)
    c.login('erin', srv.password('erin'), resource=unique('bad-'), presence=False)
    return c


def test_unmasked_frame(srv, witness):
    c = logged_in(srv)
    c.send_frame(frame(OP_TEXT, "<presence/>", mask=False))
    assert c.wait_close_code() == 1002
    c.close()
    witness.check_all()


@pytest.mark.parametrize('bad', [frame(OP_PING, b'x' * 126), frame(OP_PING, b'ab', fin=False)],
                         ids=['ping-over-125-bytes', 'fragmented-ping'])
def test_bad_control_frame(srv, witness, bad):
    """RFC 6455 section 5.5: a control frame is at most 125 bytes and not
    fragmented; one that breaks this fails the connection with a close
    frame 1002 (section 7.1.7), not a dropped TCP connection."""
    c = logged_in(srv)
    c.send_frame(bad)
    assert c.wait_close_code() == 1002
    c.close()
    witness.check_all()


def test_oversized_message(srv, witness):
    c = logged_in(srv)
    big = "<message to='%s'><body>%s</body></message>" % (HOST, 'x' * (70 * 1024))  # over 64K
    c.send_frame(frame(OP_TEXT, big))
    assert c.wait_close_code() == 1009
    c.close()
    witness.check_all()


def test_bad_utf8(srv, witness):
    c = logged_in(srv)
    c.send_frame(frame(OP_TEXT, b"<message><body>\xff\xfe</body></message>"))
    assert c.wait_close_code() == 1007
    c.close()
    witness.check_all()


def test_binary_message(srv, witness):
    c = logged_in(srv)
    c.send_frame(frame(OP_BINARY, b"<presence/>"))
    assert c.wait_close_code() == 1003
    c.close()
    witness.check_all()


def test_bad_xml_stream_error_then_close(srv, witness):
    c = logged_in(srv)
    c.send("<message><body>unclosed</message>")
    assert c.stream_error() == 'not-well-formed'
    el = c.next()
    assert el is not None and el.tag == q(NS_FRAMING, 'close'), tostr(el)
    assert c.wait_close_code() == 1000
    c.close()
    witness.check_all()


@pytest.mark.parametrize('message', [
    "<message to='%s'><body>half" % HOST,                      # a part of an element
    "<presence/><presence/>",                                  # two elements
])
def test_one_element_per_message(srv, witness, message):
    c = logged_in(srv)
    c.send(message)
    assert c.stream_error() == 'not-well-formed'
    el = c.next()
    assert el is not None and el.tag == q(NS_FRAMING, 'close'), tostr(el)
    c.close()
    witness.check_all()


def test_stanza_before_open(srv):
    c = WsClient(srv.http_port)
    c.send("<message to='%s'><body>hi</body></message>" % HOST)
    assert c.stream_error() in ('not-well-formed', 'invalid-namespace', 'bad-format'), c.received
    c.close()
