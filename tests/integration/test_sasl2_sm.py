"""Stream management (XEP-0198) inline in SASL2 (XEP-0388), and what Bind 2
(XEP-0386) does beyond binding: a session resumed in the <authenticate/>
itself (after a connection killed with messages in flight, or taking over
a connection still open), a resumption that fails inside <success/> with
the bind going on, a session that starts inactive (client state
indication) and is active again once resumed inline, and the stable resource of a client that gives a
<user-agent/> id (a detached session it replaces stores what it never
acknowledged before the new session's pipelined presence fetches)."""
import base64
import hashlib
import hmac
import json
import re
import shutil
import socket
import struct
import subprocess
import time

from parleytest import (HOST, NS_BIND, NS_CLIENT, NS_PING, NS_STANZA_ERR, NS_STREAM, q, tostr,
                        unique, find_lines)
from scramclient import NS_SASL2, scram
from test_csi import NS_CSI, body, broadcast_done, close, pair, presence_from, show, sync
from test_presence import new_user
from test_sm import NS_SM, SMClient, bodies, offline_bodies, send_chat, sm_tag

NS_BIND2 = 'urn:xmpp:bind:0'
SS = shutil.which('ss')


class Sasl2Client(SMClient):
    """A raw client that logs in with SASL2 and counts, as SMClient does,
    the stanzas it reads once stream management is on."""

    def start(self):
        self.open()
        self.starttls()
        return self

    def authenticate(self, user, extra='', password=None, mech='PLAIN'):
        """SASL2 with extra children of <authenticate/>; returns <success/>
        (or <failure/>).  The features after <success/> are read too."""
        password = password if password is not None else self.server.password(user)
        if mech == 'PLAIN':
            token = base64.b64encode(('\0%s\0%s' % (user, password)).encode()).decode()
            self.send("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s"
                      "</initial-response>%s</authenticate>" % (NS_SASL2, token, extra))
            el = self.wait_for(lambda e: e.tag in (q(NS_SASL2, 'success'), q(NS_SASL2, 'failure')),
                               what='SASL2 result')
        else:
            el = scram(self, user, password, mech, 'n,,', check_ssdp=False, sasl2=True,
                       extra=extra).el
        if el.tag == q(NS_SASL2, 'success'):
            jid = el.findtext(q(NS_SASL2, 'authorization-identifier'))
            if '/' in jid:
                self.jid = jid
            # XEP-0388: the features of the authenticated stream follow at once
            nxt = self.next()
            assert nxt is not None and nxt.tag == q(NS_STREAM, 'features'), tostr(nxt)
            self.features = nxt
        return el

    def login_sm(self, user, tag='SM', extra=''):
        """A session bound inline with resumable stream management; returns
        the <enabled/>."""
        el = self.start().authenticate(
            user, "<bind xmlns='%s'><tag>%s</tag><enable xmlns='%s' resume='true'/>%s</bind>"
            % (NS_BIND2, tag, NS_SM, extra))
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        enabled = el.find('%s/%s' % (q(NS_BIND2, 'bound'), sm_tag('enabled')))
        assert enabled is not None and enabled.get('id'), tostr(el)
        self.counting = True
        return enabled


def resume_el(previd, h):
    return "<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h)


def kill(server, c):
    """Drop c's connection as a dead network would: `ss -K` destroys the
    client's socket (the server reads a reset); without ss (or root), a
    close with SO_LINGER 0 sends the same reset."""
    port = c.sock.getsockname()[1]
    killed = False
    if SS is not None:
        r = subprocess.run([SS, '-K', 'dst', '127.0.0.1', 'dport', '=', str(server.port),
                            'sport', '=', str(port)], capture_output=True, text=True, timeout=20)
        killed = r.returncode == 0 and str(port) in r.stdout
    if not killed:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    try:
        c.sock.close()
    except OSError:
        pass
    c.closed = True


def wait_log(server, pattern, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not find_lines(pattern, server.log()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def sessions_of(server, jid):
    info = json.loads(server.ctl('--json', 'connected-users-info').stdout)
    return [s for s in info if s['jid'] == jid]


def test_features_offer_inline_sm_and_csi(server):
    with Sasl2Client(server) as c:
        c.start()
        inline = c.features.find('%s/%s' % (q(NS_SASL2, 'authentication'), q(NS_SASL2, 'inline')))
        assert inline is not None, tostr(c.features)
        assert inline.find(sm_tag('sm')) is not None, tostr(inline)
        feats = [f.get('var') for f in inline.findall('%s/%s/%s' % (
            q(NS_BIND2, 'bind'), q(NS_BIND2, 'inline'), q(NS_BIND2, 'feature')))]
        assert NS_CSI in feats and NS_SM in feats, feats


def test_inline_resume_after_killed_connection(server):
    """The connection dies (`ss -K`) with messages in flight; a new one
    authenticates (SCRAM) and resumes in the same <authenticate/>: <success/>
    names the session's full JID and carries <resumed/>, the bind request
    beside it is ignored, and the stanzas not acknowledged follow, in
    order."""
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        a = Sasl2Client(server)
        enabled = a.login_sm('alice', tag=unique('phone'))
        previd, jid = enabled.get('id'), a.jid
        for i in range(3):
            send_chat(b, jid, 'before-%d' % i)
        a.wait_for(lambda e: bodies([e]) == ['before-2'], what='before-2')
        a.send("<a xmlns='%s' h='1'/>" % NS_SM)       # before-0 acknowledged
        send_chat(a, b.jid, 'from-alice')
        assert b.wait_message('from-alice').get('from') == jid
        # in flight: written to a connection that dies before anyone reads it
        send_chat(b, jid, 'in-flight')
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        kill(server, a)
        wait_log(server, 'connection of %s lost' % jid, 'the server did not see the drop')
        for i in range(2):
            send_chat(b, jid, 'while-away-%d' % i)
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert [s['detached'] for s in sessions_of(server, jid)] == [True]

        c = Sasl2Client(server)
        try:
            el = c.start().authenticate(
                'alice', resume_el(previd, 1) + "<bind xmlns='%s'><tag>other</tag></bind>" % NS_BIND2,
                mech='SCRAM-SHA-256')
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == jid, tostr(el)
            resumed = el.find(sm_tag('resumed'))
            assert resumed is not None, tostr(el)
            assert resumed.get('previd') == previd and resumed.get('h') == '1', tostr(el)
            assert el.find(q(NS_BIND2, 'bound')) is None, tostr(el)
            assert c.features.find(q(NS_BIND, 'bind')) is None, tostr(c.features)
            c.counting = True
            c.h = 1
            want = ['before-1', 'before-2', 'in-flight', 'while-away-0', 'while-away-1']
            deadline = time.monotonic() + 5
            while bodies(c.got) != want and time.monotonic() < deadline:
                c.next(deadline - time.monotonic())
            assert bodies(c.got) == want, [tostr(e) for e in c.got]
            # the same session goes on, on this connection
            send_chat(b, jid, 'after')
            assert c.wait_message('after').get('to') == jid
            send_chat(c, b.jid, 'alice-again')
            assert b.wait_message('alice-again').get('from') == jid
            c.ack()
            assert c.request() == 2
            assert [s['detached'] for s in sessions_of(server, jid)] == [False]
        finally:
            c.close()
    assert find_lines('session %s resumed: 5 stanzas sent again' % jid, server.log())


def test_inline_resume_takes_over_open_connection(server):
    a = Sasl2Client(server)
    enabled = a.login_sm('alice', tag=unique('laptop'))
    try:
        with Sasl2Client(server) as c:
            el = c.start().authenticate('alice', resume_el(enabled.get('id'), 0))
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            assert el.find(sm_tag('resumed')) is not None, tostr(el)
            assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == a.jid
            assert a.stream_error() == 'conflict'
            assert c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'
            assert len(sessions_of(server, a.jid)) == 1
    finally:
        a.close()


def test_inline_resume_fails_and_bind_goes_on(server, witness):
    """Another user's session, an unknown id, an id one character off:
    <failed/> inside <success/>; with a bind request the session is bound
    all the same, without one the stream waits for a bind."""
    a = Sasl2Client(server)
    enabled = a.login_sm('alice', tag=unique('r'))
    previd = enabled.get('id')
    try:
        for wrong in (previd, 'no-such-session', previd[:-1] + ('_' if previd[-1] != '_' else '-')):
            with Sasl2Client(server) as c:
                tag = unique('b')
                el = c.start().authenticate(
                    'bob', resume_el(wrong, 0) + "<bind xmlns='%s'><tag>%s</tag></bind>" % (NS_BIND2, tag))
                assert el.tag == q(NS_SASL2, 'success'), tostr(el)
                failed = el.find(sm_tag('failed'))
                assert failed is not None and failed.find(q(NS_STANZA_ERR, 'item-not-found')) is not None, \
                    tostr(el)
                assert el.find(sm_tag('resumed')) is None, tostr(el)
                jid = el.findtext(q(NS_SASL2, 'authorization-identifier'))
                assert jid.startswith('bob@%s/%s/' % (HOST, tag)), tostr(el)
                assert el.find(q(NS_BIND2, 'bound')) is not None, tostr(el)
                assert c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'
        # without a bind request: authenticated, not bound
        with Sasl2Client(server) as c:
            el = c.start().authenticate('alice', resume_el('no-such-session', 0))
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            assert el.find(sm_tag('failed')) is not None, tostr(el)
            assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == 'alice@' + HOST
            assert c.features.find(q(NS_BIND, 'bind')) is not None, tostr(c.features)
            c.bind(unique('legacy'))
        # alice's session was not touched
        assert a.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'
        assert find_lines('bob@%s asked to resume an unknown session' % HOST, server.log())
    finally:
        a.close()
    witness.check()


def test_inline_resume_with_h_too_high(server):
    a = Sasl2Client(server)
    enabled = a.login_sm('alice', tag=unique('r'))
    kill(server, a)
    wait_log(server, 'connection of %s lost' % a.jid, 'the server did not see the drop')
    with Sasl2Client(server) as c:
        c.start()
        token = base64.b64encode(('\0alice\0%s' % server.password('alice')).encode()).decode()
        c.send("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s</initial-response>"
               "%s</authenticate>" % (NS_SASL2, token, resume_el(enabled.get('id'), 5)))
        err = c.wait_for(lambda e: e.tag == q(NS_STREAM, 'error'), what='stream error')
        too_high = err.find(sm_tag('handled-count-too-high'))
        assert too_high is not None and too_high.get('send-count') == '0', tostr(err)
        assert not any(e.tag == q(NS_SASL2, 'success') for e in c.received), c.received
        assert c.wait_closed()


def test_bind_inline_inactive(server):
    """<inactive/> in the bind request: the session starts inactive, so a
    contact's presence waits, and a message with a body comes at once
    (after the presence that waited)."""
    u, uu, k, ku = pair(server)
    c = Sasl2Client(server)
    try:
        el = c.start().authenticate(uu, "<bind xmlns='%s'><tag>csi</tag><inactive xmlns='%s'/></bind>"
                                    % (NS_BIND2, NS_CSI))
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        c.send('<presence/>')
        sync(c)
        n = len(c.received)
        show(k, 'away')
        broadcast_done(u, k.jid, 'away')
        sync(c)
        assert not [e for e in c.received[n:] if presence_from(k.jid)(e)], [tostr(e) for e in c.received[n:]]
        k.send("<message to='%s' type='chat'><body>wake up</body></message>" % c.jid)
        c.wait_for(body('wake up'), what='a message with a body, while inactive')
        got = c.received[n:]
        pres = [e for e in got if presence_from(k.jid)(e)]
        assert pres and pres[-1].findtext(q(NS_CLIENT, 'show')) == 'away', [tostr(e) for e in got]
        assert got.index(pres[-1]) < got.index(next(e for e in got if body('wake up')(e)))
        # <active/> on the stream ends it as usual: presence comes at once
        c.send("<active xmlns='%s'/>" % NS_CSI)
        sync(c)
        n = len(c.received)
        show(k, 'dnd')
        c.wait_for(presence_from(k.jid), what='presence once active')
    finally:
        c.close()
        close(u, k)


def test_bind_inline_active_is_not_held(server):
    u, uu, k, ku = pair(server)
    c = Sasl2Client(server)
    try:
        el = c.start().authenticate(uu, "<bind xmlns='%s'><active xmlns='%s'/></bind>" % (NS_BIND2, NS_CSI))
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        c.send('<presence/>')
        sync(c)
        show(k, 'away')
        c.wait_for(lambda e: presence_from(k.jid)(e) and e.findtext(q(NS_CLIENT, 'show')) == 'away',
                   what='presence of the contact')
    finally:
        c.close()
        close(u, k)


def test_inline_resume_is_active(server):
    """A session bound inactive whose connection dies is active again once
    resumed inline (a stream begins active, XEP-0352): the presence that
    waited for it comes on the resumed stream, and what comes next at
    once."""
    u, uu, k, ku = pair(server)
    a = Sasl2Client(server)
    c = Sasl2Client(server)
    try:
        enabled = a.login_sm(uu, tag=unique('phone'), extra="<inactive xmlns='%s'/>" % NS_CSI)
        a.send('<presence/>')
        sync(a)
        kill(server, a)
        wait_log(server, 'connection of %s lost' % a.jid, 'the server did not see the drop')
        show(k, 'away')
        broadcast_done(u, k.jid, 'away')
        el = c.start().authenticate(uu, resume_el(enabled.get('id'), a.h))
        assert el.tag == q(NS_SASL2, 'success') and el.find(sm_tag('resumed')) is not None, tostr(el)
        n = c.received.index(el) + 1
        sync(c)
        got = c.received[n:]
        assert [e.findtext(q(NS_CLIENT, 'show')) for e in got if presence_from(k.jid)(e)] == ['away'], \
            [tostr(e) for e in got]
        show(k, 'dnd')
        c.wait_for(lambda e: presence_from(k.jid)(e) and e.findtext(q(NS_CLIENT, 'show')) == 'dnd',
                   what='presence on the resumed stream')
    finally:
        c.close()
        close(u, k)


def test_user_agent_gives_a_stable_resource(server):
    """The same <user-agent/> id binds the same resource (without showing
    the id): the older session ends with <conflict/>, and what it had not
    acknowledged is kept as offline messages.  Another id, or none, gets
    another resource; the same id with another tag ends the older session
    too."""
    user = new_user(server, 'ua')
    ua = 'd5f7c1a2-3b4e-4f60-8a9b-0c1d2e3f4a5b'
    agent = "<user-agent id='%s'><software>Test</software><device>Phone</device></user-agent>" % ua
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        one = Sasl2Client(server)
        el = one.start().authenticate(user, agent + "<bind xmlns='%s'><tag>Phone</tag><enable xmlns='%s' "
                                      "resume='true'/></bind>" % (NS_BIND2, NS_SM))
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        jid = one.jid
        assert jid.startswith('%s@%s/Phone/' % (user, HOST)) and ua not in jid, jid
        one.counting = True
        send_chat(b, jid, 'unacked')
        one.wait_message('unacked')
        two = Sasl2Client(server)
        try:
            el = two.start().authenticate(user, agent + "<bind xmlns='%s'><tag>Phone</tag></bind>" % NS_BIND2)
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            assert two.jid == jid, (two.jid, jid)
            assert one.stream_error() == 'conflict'
            assert [s['detached'] for s in sessions_of(server, jid)] == [False]
            # another device of the same user, and one without an id
            for extra in ("<user-agent id='%s'/>" % unique('other-device'), ''):
                with Sasl2Client(server) as other:
                    el = other.start().authenticate(
                        user, extra + "<bind xmlns='%s'><tag>Phone</tag></bind>" % NS_BIND2)
                    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
                    assert other.jid.startswith('%s@%s/Phone/' % (user, HOST)) and other.jid != jid, other.jid
            assert two.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'
            # the same client with another tag: another resource, and the
            # older session of that client ends all the same
            with Sasl2Client(server) as three:
                el = three.start().authenticate(
                    user, agent + "<bind xmlns='%s'><tag>Renamed</tag></bind>" % NS_BIND2)
                assert el.tag == q(NS_SASL2, 'success'), tostr(el)
                assert three.jid == '%s@%s/Renamed/%s' % (user, HOST, jid.rsplit('/', 1)[1]), three.jid
                assert two.stream_error() == 'conflict'
                assert sessions_of(server, jid) == []
        finally:
            two.close()
            one.close()
    got = offline_bodies(server, user, ['unacked'])
    assert bodies(got) == ['unacked'], [tostr(e) for e in got]


def test_user_agent_replaces_a_detached_session_pipelined(server):
    """The phone's connection dropped with a message unacknowledged; its
    app restarts without stream management state and logs in with the
    same <user-agent/> id, its initial presence in the same write as the
    <authenticate/> (XEP-0386).  The detached session it replaces stores
    the message before that presence asks for the offline messages: the
    new session gets it at once."""
    user = new_user(server, 'uar')
    agent = "<user-agent id='%s'><software>Test</software></user-agent>" % unique('ua-')
    bind = "<bind xmlns='%s'><tag>Phone</tag><enable xmlns='%s' resume='true'/></bind>" % (NS_BIND2, NS_SM)
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        old = Sasl2Client(server)
        el = old.start().authenticate(user, agent + bind)
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        old.counting = True
        old.send('<presence/>')
        old.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        send_chat(b, old.jid, 'unacked-before-restart')
        old.wait_message('unacked-before-restart')
        kill(server, old)
        wait_log(server, 'connection of %s lost' % re.escape(old.jid), 'the server did not see the drop')
        with Sasl2Client(server) as new:
            new.start()
            token = base64.b64encode(('\0%s\0%s' % (user, server.password(user))).encode()).decode()
            new.send("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s</initial-response>"
                     "%s%s</authenticate><presence/>" % (NS_SASL2, token, agent, bind))
            el = new.wait_for(lambda e: e.tag in (q(NS_SASL2, 'success'), q(NS_SASL2, 'failure')),
                              what='SASL2 result')
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == old.jid, tostr(el)
            new.wait_message('unacked-before-restart', timeout=10)
            wait_log(server, 'offline: 1 offline message delivered to %s' % re.escape(old.jid),
                     'the stored message was not delivered to the new session')


def test_fast_token_login_resumes_inline(server):
    """A phone's reconnect in one round trip: a FAST token asked for at
    the first login (SCRAM), then, after the connection died, an
    HT-SHA-256-NONE login with that token that resumes the session in the
    same <authenticate/>; what was not acknowledged follows <success/>."""
    ns_fast = 'urn:xmpp:fast:0'
    user = new_user(server, 'fastsm')
    agent = "<user-agent id='%s'><software>Test</software></user-agent>" % unique('phone-ua')
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        a = Sasl2Client(server)
        el = a.start().authenticate(
            user, agent + "<request-token xmlns='%s' mechanism='HT-SHA-256-NONE'/>"
            "<bind xmlns='%s'><tag>Phone</tag><enable xmlns='%s' resume='true'/></bind>"
            % (ns_fast, NS_BIND2, NS_SM), mech='SCRAM-SHA-256')
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        token = el.find(q(ns_fast, 'token')).get('token')
        enabled = el.find('%s/%s' % (q(NS_BIND2, 'bound'), sm_tag('enabled')))
        previd, jid = enabled.get('id'), a.jid
        a.counting = True
        send_chat(b, jid, 'seen')
        a.wait_message('seen')
        kill(server, a)
        wait_log(server, 'connection of %s lost' % jid, 'the server did not see the drop')
        send_chat(b, jid, 'while-away')
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)

        c = Sasl2Client(server)
        try:
            c.start()
            proof = hmac.new(token.encode(), b'Initiator', hashlib.sha256).digest()
            ir = base64.b64encode(user.encode() + b'\0' + proof).decode()
            c.send("<authenticate xmlns='%s' mechanism='HT-SHA-256-NONE'><initial-response>%s"
                   "</initial-response>%s%s</authenticate>" % (NS_SASL2, ir, agent, resume_el(previd, 0)))
            el = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'success'), q(NS_SASL2, 'failure')),
                            what='SASL2 result')
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            ad = base64.b64decode(el.findtext(q(NS_SASL2, 'additional-data')))
            assert ad == hmac.new(token.encode(), b'Responder', hashlib.sha256).digest()
            resumed = el.find(sm_tag('resumed'))
            assert resumed is not None and resumed.get('previd') == previd, tostr(el)
            assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == jid, tostr(el)
            c.features = c.next()
            c.counting = True
            deadline = time.monotonic() + 5
            while bodies(c.got) != ['seen', 'while-away'] and time.monotonic() < deadline:
                c.next(deadline - time.monotonic())
            assert bodies(c.got) == ['seen', 'while-away'], [tostr(e) for e in c.got]
            assert c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'
        finally:
            c.close()
