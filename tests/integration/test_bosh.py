"""BOSH (XEP-0124, XEP-0206) on the http listener: a session over HTTPS
logs in with PLAIN, restarts, binds, exchanges messages with a TCP client
both ways (long-polling), terminates; a replayed rid gets the same answer,
an out-of-window rid and an unknown sid get item-not-found, and other
sessions keep working."""
import base64
import http.client
import random
import time
import xml.etree.ElementTree as ET

import pytest

import parleytest
from parleytest import HOST, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, RawClient, Witness, q, unique

NS_HTTPBIND = 'http://jabber.org/protocol/httpbind'
NS_XBOSH = 'urn:xmpp:xbosh'


class BoshParleyd(parleytest.Parleyd):
    def write_config(self):
        super().write_config()
        self.https_port = parleytest.free_port()
        text = self.config.read_text()
        text = text.replace('listen:\n', 'http:\n  bosh_inactivity: 2s\nlisten:\n  - port: %d\n'
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

    def __init__(self, srv, wait=1, hold=1, fresh=False):
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

    def connect(self):
        return http.client.HTTPSConnection('127.0.0.1', self.srv.https_port, timeout=15,
                                           context=parleytest.tls_context())

    def request(self, rid, inner='', attrs='', conn=None):
        sid = " sid='%s'" % self.sid if self.sid else ''
        data = ("<body xmlns='%s' xmlns:xmpp='%s' rid='%d'%s%s>%s</body>"
                % (NS_HTTPBIND, NS_XBOSH, rid, sid, attrs, inner))
        conn = conn or self.conn
        conn.request('POST', '/http-bind', body=data.encode(),
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

    def create(self):
        body = self.post(attrs=" to='%s' wait='%d' hold='%d' ver='1.11' xmpp:version='1.0'"
                         % (HOST, self.wait, self.hold))
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

    def login(self, user, password, resource):
        body = self.create()
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
