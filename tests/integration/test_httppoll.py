"""XEP-0025 HTTP polling (obsolete, off by default) on the http listener:
over raw HTTPS, a client logs in with SASL PLAIN, binds and exchanges
messages with a slixmpp user both ways, switching to a new key sequence
on the way; a bad key is refused without ending the session, a bad
format and an unknown id are refused; with the option off, the path is
not served."""
import asyncio
import base64
import hashlib
import http.client
import os
import re
import time

import pytest

import parleytest
from parleytest import HOST, NS_SASL, unique

STREAM = ("<stream:stream to='%s' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" % HOST)


class PollParleyd(parleytest.Parleyd):
    poll = True

    def write_config(self):
        super().write_config()
        self.https_port = parleytest.free_port()
        text = self.config.read_text()
        http = 'http:\n  http_poll: true\n' if self.poll else ''
        text = text.replace('listen:\n', '%slisten:\n  - port: %d\n'
                            '    address: 127.0.0.1\n    module: http\n    direct_tls: true\n'
                            % (http, self.https_port), 1)
        self.config.write_text(text)


class OffParleyd(PollParleyd):
    poll = False


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    s = PollParleyd(tmp_path_factory.mktemp('httppoll'))
    s.start()
    s.create_users()
    yield s
    s.finish()


def key_chain(n):
    """K(1..n) of a fresh seed, in the order they are sent (K(n) first)."""
    k = [base64.b64encode(os.urandom(12)).decode()]
    for _ in range(n):
        k.append(base64.b64encode(hashlib.sha1(k[-1].encode()).digest()).decode())
    return list(reversed(k[1:]))


class Poller:
    def __init__(self, srv, chain_len=4):
        self.srv = srv
        self.conn = http.client.HTTPSConnection('127.0.0.1', srv.https_port, timeout=15,
                                                context=parleytest.tls_context())
        self.id = '0'
        self.chain_len = chain_len
        self.keys = key_chain(chain_len)
        self.text = ''
        self.switched = 0

    def raw(self, body):
        self.conn.request('POST', '/http-poll', body=body.encode(),
                          headers={'Content-Type': 'application/x-www-form-urlencoded'})
        r = self.conn.getresponse()
        data = r.read().decode()
        assert r.status == 200, (r.status, data)
        cookie = r.getheader('Set-Cookie') or ''
        m = re.match(r'ID=([^;]*)', cookie)
        assert m, cookie
        return m.group(1), data

    def post(self, xml=''):
        key = self.keys.pop(0)
        head = '%s;%s' % (self.id, key)
        if not self.keys:   # the last key of the chain: start a new one
            self.keys = key_chain(self.chain_len)
            head += ';' + self.keys.pop(0)
            self.switched += 1
        cid, data = self.raw('%s,%s' % (head, xml))
        assert not cid.endswith(':0'), cid
        self.id = cid
        self.text += data
        return data

    def wait_for(self, pattern, timeout=10, pump=None):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text)
            if m:
                return m
            assert time.monotonic() < deadline, (pattern, self.text)
            if pump:
                pump()
            else:
                time.sleep(0.1)
            self.post()


def poll_login(p, user, password, resource):
    p.post(STREAM)
    p.wait_for(r'<mechanism>PLAIN</mechanism>')
    token = base64.b64encode(('\0%s\0%s' % (user, password)).encode()).decode()
    p.post("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
    p.wait_for(r'<success')
    p.text = ''
    p.post(STREAM)
    p.wait_for(r'<bind ')
    p.post("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>%s</resource></bind></iq>" % resource)
    jid = p.wait_for(r'<jid>([^<]+)</jid>').group(1)
    p.post("<presence/>")
    return jid


def test_login_and_messages_with_slixmpp(srv, run):
    bob = run(parleytest.login(srv, 'bob', resource=unique('slix-')))
    try:
        p = Poller(srv)
        jid = poll_login(p, 'alice', srv.password('alice'), unique('poll-'))
        assert jid.startswith('alice@%s/poll-' % HOST)
        p.post("<message to='%s' type='chat'><body>from-poll</body></message>" % bob.boundjid.full)
        m = run(bob.messages.get(), timeout=10)
        assert m['body'] == 'from-poll' and m['from'].full == jid, m
        bob.send_message(mto=jid, mbody='to-poll', mtype='chat')
        p.wait_for(r'<body>to-poll</body>', pump=lambda: run(asyncio.sleep(0.1)))
        assert p.switched >= 1     # a new key chain was taken up on the way
    finally:
        run(parleytest.logout(bob))


def test_bad_key_is_refused(srv):
    p = Poller(srv, chain_len=10)
    p.post(STREAM)
    p.wait_for(r'<mechanism>')
    # a key that is not the next one of the chain: refused, nothing read
    cid, data = p.raw("%s;%s,<auth xmlns='%s' mechanism='PLAIN'>AGJvYgB4</auth>"
                      % (p.id, base64.b64encode(b'x' * 20).decode(), NS_SASL))
    assert cid == '-3:0' and data == ''
    # the same key twice: refused too
    used = p.keys[0]
    p.post()
    cid, _ = p.raw('%s;%s,' % (p.id, used))
    assert cid == '-3:0'
    # the session goes on with the right key
    p.post("<iq type='get' id='x1'/>")   # before auth: a stream error, but read
    p.wait_for(r'not-authorized')


def test_bad_format_and_unknown_id(srv):
    p = Poller(srv)
    assert p.raw('no comma here')[0] == '-2:0'
    assert p.raw(',<stream:stream>')[0] == '-2:0'
    assert p.raw('nosuchsession;abc,')[0] == '-2:0'
    assert p.raw('0;abc;def;ghi,' + STREAM)[0] == '-2:0'     # four fields
    assert p.raw('0;,' + STREAM)[0] == '-2:0'               # no key
    # a GET is not polling
    p.conn.request('GET', '/http-poll')
    r = p.conn.getresponse()
    r.read()
    assert r.status == 405


def test_off_by_default(tmp_path):
    s = OffParleyd(tmp_path)
    s.start()
    try:
        c = http.client.HTTPSConnection('127.0.0.1', s.https_port, timeout=10,
                                        context=parleytest.tls_context())
        c.request('POST', '/http-poll', body=('0;abc,' + STREAM).encode())
        r = c.getresponse()
        r.read()
        assert r.status == 404
    finally:
        s.finish()


class LimitedPollParleyd(PollParleyd):
    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        assert 'modules:\n  disco: {}\n' in text, 'the harness configuration changed'
        text = text.replace('modules:\n  disco: {}\n',
                            'modules:\n  disco: {}\n  limits: { stanza_rate: 10, stanza_burst: 20 }\n', 1)
        self.config.write_text(text)


def test_stanza_rate_slows_a_polling_session(tmp_path):
    """Past modules.limits.stanza_rate a polling session's input waits
    (about 4 s of debt for 60 pings over a burst of 20 at 10/s, one
    request each), as for BOSH; nothing is lost and the session stays up."""
    s = LimitedPollParleyd(tmp_path)
    s.start()
    s.create_users()
    try:
        p = Poller(s, chain_len=50)
        poll_login(p, 'alice', s.password('alice'), unique('rate-'))
        ids = ['r%d' % i for i in range(60)]
        start = time.monotonic()
        for i in ids:
            p.post("<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % (i, HOST))
        for i in ids:
            p.wait_for(r"id=['\"]%s['\"]" % i, timeout=40)
        waited = time.monotonic() - start
        assert waited >= 3.0, waited
        assert waited < 30, waited
    finally:
        s.finish()
