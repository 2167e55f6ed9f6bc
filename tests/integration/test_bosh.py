"""BOSH (XEP-0124, XEP-0206) on the http listener: a session over HTTPS
logs in with PLAIN, restarts, binds, exchanges messages with a TCP client
both ways (long-polling), terminates; a replayed rid gets the same answer,
an out-of-window rid and an unknown sid get item-not-found, and other
sessions keep working.  Pauses, acks (both ways, report/time and the
resend of a missed answer), polling sessions (hold='0') and the polling
and overactivity policy, terminate with payload, and per-account rate
limits that slow a BOSH session down."""
import base64
import http.client
import random
import time
import xml.etree.ElementTree as ET

import pytest

import parleytest
from parleytest import HOST, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, RawClient, Witness, q, tostr, unique

NS_HTTPBIND = 'http://jabber.org/protocol/httpbind'
NS_XBOSH = 'urn:xmpp:xbosh'


class BoshParleyd(parleytest.Parleyd):
    def write_config(self):
        super().write_config()
        self.https_port = parleytest.free_port()
        text = self.config.read_text()
        text = text.replace('listen:\n', 'http:\n  bosh_inactivity: 2s\n  bosh_max_pause: 5s\n'
                            '  bosh_polling: 1s\nlisten:\n  - port: %d\n'
                            '    address: 127.0.0.1\n    module: http\n    direct_tls: true\n'
                            % self.https_port, 1)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    s = BoshParleyd(tmp_path_factory.mktemp('bosh'))
    s.start()
    s.create_users()
    yield s
    s.finish()


class Bosh:
    """A BOSH client, one request at a time (hold='1')."""

    def __init__(self, srv, wait=1, hold=1, fresh=False, path='/http-bind'):
        """fresh: every request on a new HTTPS connection."""
        self.srv = srv
        self.fresh = fresh
        self.hold = hold
        self.conn = self.connect()
        self.rid = random.randint(1000, 1 << 40)
        self.sid = None
        self.wait = wait
        self.got = []
        self.last_raw = None
        self.path = path

    def connect(self):
        return http.client.HTTPSConnection('127.0.0.1', self.srv.https_port, timeout=15,
                                           context=parleytest.tls_context())

    def request(self, rid, inner='', attrs='', conn=None):
        sid = " sid='%s'" % self.sid if self.sid else ''
        data = ("<body xmlns='%s' xmlns:xmpp='%s' rid='%d'%s%s>%s</body>"
                % (NS_HTTPBIND, NS_XBOSH, rid, sid, attrs, inner))
        conn = conn or self.conn
        conn.request('POST', self.path, body=data.encode(),
                     headers={'Content-Type': 'text/xml; charset=utf-8'})
        return conn

    def post(self, inner='', attrs='', rid=None):
        rid = self.rid if rid is None else rid
        if self.fresh:
            self.conn.close()
            self.conn = self.connect()
        resp = self.request(rid, inner, attrs).getresponse()
        raw = resp.read()
        assert resp.status == 200, (resp.status, raw)
        self.last_raw = raw
        body = ET.fromstring(raw)
        assert body.tag == q(NS_HTTPBIND, 'body'), raw
        self.got.extend(list(body))
        return body

    def send(self, inner='', attrs=''):
        self.rid += 1
        return self.post(inner, attrs)

    def create(self, extra=''):
        body = self.post(attrs=" to='%s' wait='%d' hold='%d' ver='1.11' xmpp:version='1.0'%s"
                         % (HOST, self.wait, self.hold, extra))
        self.sid = body.get('sid')
        assert self.sid and body.get('type') is None, ET.tostring(body)
        return body

    def wait_for(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            for el in self.got:
                if pred(el):
                    self.got.remove(el)
                    return el
            assert time.monotonic() < deadline, [ET.tostring(e) for e in self.got]
            self.send()

    def login(self, user, password, resource, extra=''):
        body = self.create(extra)
        mechs = [m.text for m in body.iter(q(NS_SASL, 'mechanism'))]
        assert 'PLAIN' in mechs, ET.tostring(body)
        token = base64.b64encode(('\0%s\0%s' % (user, password)).encode()).decode()
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        self.wait_for(lambda e: e.tag == q(NS_SASL, 'success'))
        self.send(attrs=" xmpp:restart='true' to='%s'" % HOST)
        self.wait_for(lambda e: e.tag == q(NS_STREAM, 'features'))
        self.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='%s'><resource>%s</resource>"
                  "</bind></iq>" % (NS_BIND, resource))
        iq = self.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'b1')
        self.jid = iq.find('%s/%s' % (q(NS_BIND, 'bind'), q(NS_BIND, 'jid'))).text
        return self.jid


def test_login_and_messages_both_ways(srv):
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv)
    jid = b.login('alice', srv.password('alice'), unique('bosh-'))
    assert jid.startswith('alice@%s/bosh-' % HOST)
    b.send("<message xmlns='jabber:client' to='%s' type='chat'><body>from-bosh</body></message>" % bob.jid)
    assert bob.wait_message('from-bosh').get('from') == jid
    bob.send("<message to='%s' type='chat'><body>to-bosh</body></message>" % jid)
    m = b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.findtext(q(NS_CLIENT, 'body')) == 'to-bosh')
    assert m.get('from') == bob.jid
    # a replayed rid: the same answer again
    before = b.last_raw
    again = b.post(rid=b.rid)
    assert ET.tostring(again) == ET.tostring(ET.fromstring(before))
    body = b.send(attrs=" type='terminate'")
    assert body.get('type') == 'terminate' or b.send().get('type') == 'terminate'
    bob.close()


def test_long_poll_is_answered_by_a_message(srv):
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv, wait=10)
    jid = b.login('carol', srv.password('carol'), unique('poll-'))
    b.got.clear()
    import threading
    threading.Timer(1.0, lambda: bob.send("<message to='%s' type='chat'><body>wake</body></message>"
                                          % jid)).start()
    start = time.monotonic()
    b.send()   # held until the message comes
    assert time.monotonic() - start < 8
    assert any(e.findtext(q(NS_CLIENT, 'body')) == 'wake' for e in b.got), b.got
    bob.close()


def test_bad_rids_and_sid(srv):
    w = Witness(srv)
    try:
        b = Bosh(srv)
        b.login('erin', srv.password('erin'), unique('bad-'))
        body = b.post(rid=b.rid + 50)   # out of the window
        assert body.get('type') == 'terminate' and body.get('condition') == 'item-not-found'
        body = b.send()                  # the session is gone
        assert body.get('condition') == 'item-not-found'
        b2 = Bosh(srv)
        b2.sid = 'no-such-session'
        assert b2.post().get('condition') == 'item-not-found'
        # not a <body/>
        b2.conn.request('POST', '/http-bind', body=b'<nope/>')
        r = b2.conn.getresponse()
        r.read()
        assert r.status == 400
        w.check()
    finally:
        w.close()


def test_session_survives_connections(srv):
    """Every request on a new HTTPS connection: one session all along."""
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv, fresh=True)
    jid = b.login('alice', srv.password('alice'), unique('fresh-'))
    bob.send("<message to='%s' type='chat'><body>over-new-connections</body></message>" % jid)
    b.wait_for(lambda e: e.findtext(q(NS_CLIENT, 'body')) == 'over-new-connections')
    bob.close()


def test_early_rid_waits_for_its_turn(srv):
    """hold='2': a request that arrives before the one with the rid
    before it is handled after it, in rid order."""
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv, wait=2, hold=2)
    jid = b.login('erin', srv.password('erin'), unique('early-'))
    second = b.connect()
    msg = "<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>"
    b.request(b.rid + 2, msg % (bob.jid, 'second'), conn=second)
    time.sleep(0.3)
    first = b.request(b.rid + 1, msg % (bob.jid, 'first'))
    b.rid += 2
    assert bob.wait_message('first') is not None
    assert bob.wait_message('second') is not None
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in bob.received
            if m.tag == q(NS_CLIENT, 'message')][-2:] == ['first', 'second']
    for c in (first, second):
        r = c.getresponse()
        assert r.status == 200
        r.read()
    second.close()
    bob.close()


def test_repeated_early_rid_takes_the_place_of_the_first(srv):
    """hold='2', wait='2': a request that came early and is sent again
    before its turn (XEP-0124 section 14.3) takes the place of the first
    copy, which is answered empty at once; it is answered within 'wait'
    once the rid before it comes, is taken once and is not counted twice
    against 'requests'."""
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv, wait=2, hold=2)
    b.login('erin', srv.password('erin'), unique('again-'))
    conns = [b.connect(), b.connect()]
    start = time.monotonic()
    b.request(b.rid + 2, msg(bob.jid, 'early'), conn=conns[0])
    time.sleep(0.3)
    b.request(b.rid + 2, msg(bob.jid, 'early'), conn=conns[1])   # the same again
    body = response(conns[0])                                     # the first copy
    assert len(body) == 0 and body.get('type') is None, ET.tostring(body)
    assert time.monotonic() - start < 1.5
    first = b.request(b.rid + 1)
    for c in (first, conns[1]):
        body = response(c)
        assert body.get('type') != 'terminate', ET.tostring(body)
    assert time.monotonic() - start < 4.5    # 'wait' is 2 s
    b.rid += 2
    assert delivered_before(bob, 'early') == ['early']
    b.send(msg(bob.jid, 'after'))
    assert delivered_before(bob, 'after') == ['after']
    for c in conns:
        c.close()
    bob.close()


def test_repeated_held_rid_takes_the_place_of_the_first(srv):
    """The latest rid sent again while the first copy is still held (its
    connection broke, the server did not see it go): the first copy is
    answered empty at once, the repeat waits in its place and gets the
    output; the session goes on."""
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv, wait=3)
    jid = b.login('carol', srv.password('carol'), unique('held-again-'))
    b.rid += 1
    held = b.request(b.rid)
    time.sleep(0.3)
    second = b.connect()
    b.request(b.rid, conn=second)
    body = response(held)
    assert len(body) == 0 and body.get('type') is None, ET.tostring(body)
    bob.send("<message to='%s' type='chat'><body>to-the-repeat</body></message>" % jid)
    body = response(second)
    assert body.get('type') != 'terminate', ET.tostring(body)
    assert body.findtext('%s/%s' % (q(NS_CLIENT, 'message'), q(NS_CLIENT, 'body'))) == 'to-the-repeat', \
        ET.tostring(body)
    second.close()
    b.send(PING % 'after-repeat')
    b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'after-repeat')
    bob.close()


def test_inactive_session_ends(srv):
    b = Bosh(srv)
    b.login('carol', srv.password('carol'), unique('idle-'))
    time.sleep(3.5)   # http.bosh_inactivity is 2s here, checked about then
    assert b.send().get('condition') == 'item-not-found'


def test_stream_error_ends_the_session(srv):
    b = Bosh(srv)
    b.create()
    body = b.send("<message xmlns='jabber:client' to='%s'><body>too early</body></message>" % HOST)
    while body.get('type') != 'terminate':
        body = b.send()
    err = body.find(q(NS_STREAM, 'error'))
    assert err is not None, ET.tostring(body)
    assert err.find(q('urn:ietf:params:xml:ns:xmpp-streams', 'not-authorized')) is not None
    # XEP-0206 section 2: a <body/> with a <stream:error/> says so
    assert body.get('condition') == 'remote-stream-error', ET.tostring(body)


def test_conflict_ends_the_held_request_with_its_stream_error(srv):
    """A second session binding the same resource replaces the first: the
    request the first one holds gets the <stream:error/> with <conflict/>
    in a terminating <body/> whose condition is 'remote-stream-error'."""
    resource = unique('same-')
    first = Bosh(srv, wait=5)
    first.login('alice', srv.password('alice'), resource)
    first.rid += 1
    held = first.request(first.rid)
    time.sleep(0.3)
    second = Bosh(srv, wait=5)
    second.login('alice', srv.password('alice'), resource)
    body = response(held)
    while body.get('type') != 'terminate':
        first.rid += 1
        body = response(first.request(first.rid))
    err = body.find(q(NS_STREAM, 'error'))
    assert err is not None, ET.tostring(body)
    assert err.find(q('urn:ietf:params:xml:ns:xmpp-streams', 'conflict')) is not None, ET.tostring(body)
    assert body.get('condition') == 'remote-stream-error', ET.tostring(body)
    second.send(PING % 'still-here')
    second.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'still-here')


def test_restart_without_to(srv):
    """XEP-0206 section 5: a restart request need not repeat 'to'; the
    stream restarts for the session's domain."""
    b = Bosh(srv)
    b.create()
    token = base64.b64encode(('\0%s\0%s' % ('bob', srv.password('bob'))).encode()).decode()
    b.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
    b.wait_for(lambda e: e.tag == q(NS_SASL, 'success'))
    body = b.send(attrs=" xmpp:restart='true'")
    assert body.get('type') != 'terminate', ET.tostring(body)
    b.wait_for(lambda e: e.tag == q(NS_STREAM, 'features'))
    b.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='%s'/></iq>" % NS_BIND)
    iq = b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'b1')
    assert iq.get('type') == 'result', ET.tostring(iq)


def test_client_gone_while_held(srv):
    """A held request whose connection closes is dropped; the session
    goes on with the next rid."""
    b = Bosh(srv, wait=2)
    b.login('alice', srv.password('alice'), unique('gone-'))
    b.rid += 1
    c = b.request(b.rid)
    time.sleep(0.3)
    c.close()
    b.conn = b.connect()
    time.sleep(0.3)
    # the same rid again (XEP-0124 §14.3): it waits again, then the session goes on
    b.post()
    b.send("<iq xmlns='jabber:client' type='get' id='p1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % HOST)
    b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'p1')


PING = "<iq xmlns='jabber:client' type='get' id='%s' to='" + HOST + "'><ping xmlns='urn:xmpp:ping'/></iq>"


def response(conn):
    r = conn.getresponse()
    raw = r.read()
    assert r.status == 200, (r.status, raw)
    return ET.fromstring(raw)


def test_pause_extends_inactivity(srv):
    """pause='4' (maxpause 5 advertised): answered at once, and the session
    outlives the usual 2 s inactivity until the next request."""
    b = Bosh(srv, wait=3)
    body = b.create()
    assert body.get('maxpause') == '5', ET.tostring(body)
    start = time.monotonic()
    b.send(attrs=" pause='4'")
    assert time.monotonic() - start < 1.5   # not held for 'wait'
    time.sleep(3.2)
    body = b.send()
    assert body.get('type') != 'terminate', ET.tostring(body)
    # the pause ended with that request: the usual limit again
    time.sleep(3.5)
    assert b.send().get('condition') == 'item-not-found'


def test_pause_over_maxpause_is_refused(srv):
    b = Bosh(srv)
    b.create()
    body = b.send(attrs=" pause='60'")
    assert body.get('type') == 'terminate' and body.get('condition') == 'policy-violation'
    assert b.send().get('condition') == 'item-not-found'


def test_acks_report_and_resend(srv):
    b0 = Bosh(srv)
    body = b0.create(" ack='1'")
    assert body.get('ack') == str(b0.rid), ET.tostring(body)
    b = Bosh(srv, wait=1)
    b.login('alice', srv.password('alice'), unique('ack-'), extra=" ack='1'")
    # an answer the client "missed": sent, never acknowledged
    b.send(PING % 'lost1')
    lost_rid, lost_raw = b.rid, b.last_raw
    time.sleep(1.3)
    body = b.send(attrs=" ack='%d'" % (lost_rid - 1))
    assert body.get('report') == str(lost_rid), ET.tostring(body)
    assert int(body.get('time')) >= 1000, ET.tostring(body)
    # the client asks for it again: the same answer
    assert b.post(rid=lost_rid) is not None and b.last_raw == lost_raw
    # everything acknowledged: no report
    body = b.send(attrs=" ack='%d'" % (b.rid - 1))
    assert body.get('report') is None, ET.tostring(body)
    # acknowledged answers are forgotten: that rid is now refused
    b.send(attrs=" ack='%d'" % b.rid)
    assert b.post(rid=lost_rid).get('condition') == 'item-not-found'


def test_server_acks_the_latest_rid(srv):
    """An answer to a request older than the latest one says ack='latest'."""
    b = Bosh(srv, wait=3)
    b.create(" ack='1'")
    first = b.request(b.rid + 1)
    time.sleep(0.3)
    second = b.connect()
    b.request(b.rid + 2, PING % 'second', conn=second)
    body = response(first)
    assert body.get('ack') == str(b.rid + 2), ET.tostring(body)
    response(second)
    second.close()


def test_polling_session(srv):
    """hold='0': every request answered at once; empty polls faster than
    'polling' end the session with policy-violation."""
    b = Bosh(srv, wait=5, hold=0)
    body = b.create()
    assert body.get('hold') == '0' and body.get('polling') == '1' and body.get('requests') == '1'
    token = base64.b64encode(('\0%s\0%s' % ('carol', srv.password('carol'))).encode()).decode()
    start = time.monotonic()
    b.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))   # payload: not a poll
    assert time.monotonic() - start < 2
    deadline = time.monotonic() + 10
    while not any(e.tag == q(NS_SASL, 'success') for e in b.got):
        assert time.monotonic() < deadline, b.got
        time.sleep(1.1)
        start = time.monotonic()
        body = b.send()
        assert time.monotonic() - start < 2      # not held
        assert body.get('type') != 'terminate', ET.tostring(body)
    time.sleep(1.1)
    body = b.send()                              # nothing left to say: answered empty
    assert len(body) == 0 and body.get('type') != 'terminate', ET.tostring(body)
    body = b.send()                              # at once: too frequent
    assert body.get('type') == 'terminate' and body.get('condition') == 'policy-violation'


def test_polling_counts_only_empty_polls(srv):
    """hold='0' (XEP-0124 section 12): only two empty requests in a row,
    the first answered empty, count as polling too often; a poll right
    after a request with a payload, or right after an answer that
    carried one, is fine."""
    b = Bosh(srv, wait=5, hold=0)
    b.create()
    token = base64.b64encode(('\0%s\0%s' % ('carol', srv.password('carol'))).encode()).decode()
    b.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
    polls = 0
    while not any(e.tag == q(NS_SASL, 'success') for e in b.got):
        # at once after the payload, or after an answer that carried one
        body = b.send()
        assert body.get('type') != 'terminate', ET.tostring(body)
        if len(body) == 0:
            time.sleep(1.1)                      # an empty answer: wait before the next
        polls += 1
        assert polls < 10, b.got
    # the answer with <success/> had a payload: an empty poll at once is fine
    body = b.send()
    assert body.get('type') != 'terminate', ET.tostring(body)
    ended = None
    for _ in range(3):                           # empty polls, one after another
        prev_empty = len(body) == 0
        body = b.send()
        if body.get('type') == 'terminate':
            ended = prev_empty
            break
    assert ended is True, 'not ended, or ended after an answer with a payload'
    assert body.get('condition') == 'policy-violation'


def test_out_of_order_requests_are_not_polling(srv):
    """hold='1': the client's next two requests arrive out of rid order,
    the later rid (with a payload) first, then the empty one before it.
    The empty one is not the last of the window and the two did not come
    too fast in rid order's sense: neither ends the session."""
    b = Bosh(srv, wait=2)
    b.login('erin', srv.password('erin'), unique('ooo-'))
    second = b.connect()
    b.request(b.rid + 2, PING % 'ooo', conn=second)   # the later rid, first
    time.sleep(0.2)
    first = b.request(b.rid + 1)                    # the empty one before it
    b.rid += 2
    got = []
    for c in (first, second):
        body = response(c)
        assert body.get('type') != 'terminate', ET.tostring(body)
        got += list(body)
    second.close()
    while not any(e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'ooo' for e in got):
        body = b.send()
        assert body.get('type') != 'terminate', ET.tostring(body)
        got += list(body)
    # the session goes on
    b.send(PING % 'after')
    b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == 'after')


def test_overactivity(srv):
    """hold='1' allows two requests at once; a third ends the session."""
    b = Bosh(srv, wait=3)
    b.create()
    c1 = b.request(b.rid + 1)
    time.sleep(0.2)
    c2 = b.connect()
    b.request(b.rid + 3, conn=c2)    # early, waits for rid + 2
    time.sleep(0.2)
    c3 = b.connect()
    b.request(b.rid + 2, PING % 'o', conn=c3)
    body = response(c3)
    assert body.get('type') == 'terminate' and body.get('condition') == 'policy-violation'
    for c in (c1, c2):
        assert response(c).get('type') == 'terminate'
    c2.close()
    c3.close()


def test_terminate_delivers_its_payload(srv):
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv)
    b.login('erin', srv.password('erin'), unique('term-'))
    body = b.send("<message xmlns='jabber:client' to='%s' type='chat'><body>last-words</body></message>"
                  "<presence xmlns='jabber:client' type='unavailable'/>" % bob.jid,
                  attrs=" type='terminate'")
    assert body.get('type') == 'terminate' or b.send().get('type') == 'terminate'
    assert bob.wait_message('last-words') is not None
    bob.close()


def test_version_is_the_lower_of_both(srv):
    """XEP-0124 section 7.2: 'ver' in the creation answer is the client's
    version or the highest the server implements (1.11), whichever is
    lower; versions compare as major and minor numbers."""
    for asked, said in (('1.6', '1.6'), ('1.11', '1.11'), ('1.20', '1.11'), ('2.0', '1.11'),
                        ('1.9', '1.9'), ('junk', '1.11')):
        b = Bosh(srv)
        body = b.post(attrs=" to='%s' wait='1' hold='1' ver='%s' xmpp:version='1.0'" % (HOST, asked))
        assert body.get('sid') and body.get('ver') == said, (asked, ET.tostring(body))
        b.sid = body.get('sid')
        b.send(attrs=" type='terminate'")


def test_bad_sid_length(srv):
    b = Bosh(srv)
    b.create()
    sid = b.sid
    b.sid = sid + 'x'
    assert b.send().get('condition') == 'item-not-found'
    b.sid = sid[:-1]
    assert b.send().get('condition') == 'item-not-found'


class LimitedBoshParleyd(BoshParleyd):
    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        assert 'modules:\n  disco: {}\n' in text, 'the harness configuration changed'
        text = text.replace('modules:\n  disco: {}\n',
                            'modules:\n  disco: {}\n  limits: { stanza_rate: 10, stanza_burst: 20 }\n', 1)
        # a smaller output cap, which also bounds held-back input
        assert 'limits:\n  max_stanza_size: 64K\n' in text, 'the harness configuration changed'
        text = text.replace('limits:\n  max_stanza_size: 64K\n', 'limits:\n  max_stanza_size: 64K\n  max_output: 256K\n', 1)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def limited(tmp_path_factory):
    s = LimitedBoshParleyd(tmp_path_factory.mktemp('bosh-limits'))
    s.start()
    s.create_users()
    yield s
    s.finish()


def test_stanza_rate_slows_a_bosh_session(limited):
    """Past modules.limits.stanza_rate a BOSH session's input waits (about
    4 s of debt for 60 pings over a burst of 20 at 10/s); nothing is lost
    and the session stays up."""
    b = Bosh(limited, wait=1)
    b.login('alice', limited.password('alice'), unique('rate-'))
    ids = ['r%d' % i for i in range(60)]
    start = time.monotonic()
    b.send(''.join(PING % i for i in ids))
    for i in ids:
        b.wait_for(lambda e, i=i: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == i, timeout=40)
    waited = time.monotonic() - start
    assert waited >= 3.0, waited
    assert waited < 30, waited


def test_input_held_back_is_bounded(limited):
    """While the rate limit holds a BOSH session's input back, its requests
    are still answered, so the held input is what is bounded: past
    max_output (256 KiB here) the session ends with a policy-violation instead of
    growing without end."""
    b = Bosh(limited, wait=1)
    b.login('alice', limited.password('alice'), unique('held-'))
    # 200 pings: about 18 s of debt at 10/s over a burst of 20
    b.send(''.join(PING % ('d%d' % i) for i in range(200)))
    big = "<message xmlns='jabber:client' to='bob@%s' type='chat'><body>%s</body></message>" \
        % (HOST, 'h' * 40000)
    ended = None
    for _ in range(16):   # up to 640 kB in 40 kB requests
        body = b.send(big)
        if body.get('type') == 'terminate':
            ended = b.last_raw.decode()
            break
    assert ended is not None, 'the session took 640 kB of held-back input'
    assert 'policy-violation' in ended, ended
    assert 'too much input while the session is held back' in limited.log()


def raw_post(b, data):
    """POST data as it is (not the client's own <body/>): (status, text)."""
    b.conn.request('POST', b.path, body=data.encode(), headers={'Content-Type': 'text/xml; charset=utf-8'})
    r = b.conn.getresponse()
    return r.status, r.read().decode()


def delivered_before(bob, marker):
    """The message bodies bob gets up to the one that says marker."""
    seen = []

    def pred(e):
        if e.tag == q(NS_CLIENT, 'message'):
            seen.append(e.findtext(q(NS_CLIENT, 'body')))
            return seen[-1] == marker
        return False
    bob.wait_for(pred, timeout=10)
    return seen


def msg(to, text, inside=''):
    return "<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body>%s</message>" % (to, text, inside)


def test_payload_limits_and_framing(srv):
    """A request's payload goes to the stream's parser without a tree of
    it being built first: the limits still hold there.  A stanza over the
    size limit, a <body/> in another namespace and a stanza split over two
    requests are refused (400) and the session goes on; a stanza too deep
    ends the session with a stream error; none of them is delivered."""
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv)
    b.login('alice', srv.password('alice'), unique('limits-'))
    head = "<body xmlns='%s' rid='%%d' sid='%s'>" % (NS_HTTPBIND, b.sid)
    # over max_stanza_size (256 KiB by default)
    status, _ = raw_post(b, head % (b.rid + 1) + msg(bob.jid, 'big' + 'x' * 300000) + '</body>')
    assert status == 400
    # a <body/> that is not in the httpbind namespace
    status, _ = raw_post(b, (head % (b.rid + 1)).replace(NS_HTTPBIND, 'urn:example:not-bosh')
                         + msg(bob.jid, 'bad-ns') + '</body>')
    assert status == 400
    # half a stanza: the rest would come in the next request
    status, _ = raw_post(b, head % (b.rid + 1) + msg(bob.jid, 'split')[:40] + '</body>')
    assert status == 400
    b.send(msg(bob.jid, 'after-refusals'))
    assert delivered_before(bob, 'after-refusals') == ['after-refusals']
    # deeper than max_depth (64): a stream error ends the session
    body = b.send(msg(bob.jid, 'deep', '<x xmlns="urn:example:deep">' * 80 + '</x>' * 80))
    while body.get('type') != 'terminate':
        body = b.send()
    err = body.find(q(NS_STREAM, 'error'))
    assert err is not None, ET.tostring(body)
    assert err.find(q('urn:ietf:params:xml:ns:xmpp-streams', 'policy-violation')) is not None, ET.tostring(body)
    b2 = Bosh(srv)
    b2.login('alice', srv.password('alice'), unique('limits-'))
    b2.send(msg(bob.jid, 'after-deep'))
    assert delivered_before(bob, 'after-deep') == ['after-deep']
    bob.close()


def test_payload_that_needs_the_body_context(srv):
    """Stanzas that lean on <body/>'s namespace declarations (a prefix it
    declares, several stanzas with whitespace and CDATA) mean the same as
    before and are delivered."""
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv)
    b.login('alice', srv.password('alice'), unique('ctx-'))
    b.rid += 1
    status, text = raw_post(b, "<body xmlns='%s' xmlns:jc='jabber:client' rid='%d' sid='%s'>"
                            "<jc:message to='%s' type='chat'><jc:body>prefixed</jc:body></jc:message>"
                            "</body>" % (NS_HTTPBIND, b.rid, b.sid, bob.jid))
    assert status == 200, text
    b.send('\n ' + msg(bob.jid, '<![CDATA[one <&>]]>') + ' \n' + msg(bob.jid, 'two') + '\n')
    assert delivered_before(bob, 'two') == ['prefixed', 'one <&>', 'two']
    bob.close()


def test_unqualified_stanzas_are_jabber_client(srv):
    """Stanzas without an xmlns of their own inside <body/> (in its
    namespace, XEP-0206 §2) are jabber:client stanzas, on the direct path
    and on the tree path (a prefix <body/> declares is used in the
    payload): bob gets them in jabber:client, with their children."""
    bob = RawClient(srv.port)
    bob.login('bob', srv.password('bob'), resource=unique('tcp-'))
    b = Bosh(srv)
    b.login('alice', srv.password('alice'), unique('unq-'))
    plain = "<message to='%s' type='chat'><body>%s</body></message>"
    b.send(plain % (bob.jid, 'direct'))
    b.rid += 1
    status, text = raw_post(b, "<body xmlns='%s' xmlns:jc='jabber:client' rid='%d' sid='%s'>%s"
                            "<jc:message to='%s' type='chat'><jc:body>tree-2</jc:body></jc:message>"
                            "</body>" % (NS_HTTPBIND, b.rid, b.sid, plain % (bob.jid, 'tree-1'), bob.jid))
    assert status == 200, text
    seen = []

    def pred(e):
        assert e.tag == q(NS_CLIENT, 'message'), tostr(e)
        seen.append(e.findtext(q(NS_CLIENT, 'body')))
        return seen[-1] == 'tree-2'
    bob.wait_for(pred, timeout=10)
    assert seen == ['direct', 'tree-1', 'tree-2']
    bob.close()
