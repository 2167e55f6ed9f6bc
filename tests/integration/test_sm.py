"""Stream management (XEP-0198): enable, acks both ways, resumption,
expiry and what happens to unacknowledged messages, bounds, bad input,
and a crash after the server acknowledged messages."""
import json
import re
import signal
import socket
import struct
import time

import pytest

from conftest import start_server
from parleytest import (HOST, NS_CLIENT, NS_PING, NS_STREAM, NS_STANZA_ERR, NS_SASL, RawClient,
                        q, local, tostr, unique, find_lines, sanitizer_lines)

NS_SM = 'urn:xmpp:sm:3'
NS_DELAY = 'urn:xmpp:delay'
STANZAS = (q(NS_CLIENT, 'message'), q(NS_CLIENT, 'presence'), q(NS_CLIENT, 'iq'))

SM_CONFIG = """stream_management:
  resume_timeout: 60s
  max_resume_timeout: 120s
  max_unacked: 8
  ack_interval: 3
"""


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """A server with a small max_unacked."""
    srv = start_server(tmp_path_factory, 'parley-sm', global_auth=SM_CONFIG)
    yield srv
    srv.finish()


def sm_tag(name):
    return q(NS_SM, name)


class SMClient(RawClient):
    """A raw client that counts the stanzas it reads after <enabled/>."""

    def __init__(self, server, **kw):
        super().__init__(server.port, **kw)
        self.server = server
        self.counting = False
        self.h = 0
        self.got = []   # stanzas read since enable, in order

    def next(self, timeout=None):
        el = super().next(timeout)
        if el is not None and self.counting and el.tag in STANZAS and el not in self.got:
            self.got.append(el)
            self.h += 1
        return el

    def enable(self, resume=True, max_=None):
        attrs = " resume='true'" if resume else ''
        if max_ is not None:
            attrs += " max='%s'" % max_
        self.send("<enable xmlns='%s'%s/>" % (NS_SM, attrs))
        el = self.wait_for(lambda e: e.tag in (sm_tag('enabled'), sm_tag('failed')),
                           what='<enabled/>')
        assert el.tag == sm_tag('enabled'), tostr(el)
        self.counting = True
        return el

    def auth(self, user):
        self.open()
        self.starttls()
        r = self.auth_plain(user, self.server.password(user))
        assert r.tag == q(NS_SASL, 'success'), tostr(r)
        return self.open()

    def sm_login(self, user, resource=None, resume=True, presence=True, max_=None):
        self.login(user, self.server.password(user), resource=resource, presence=False)
        assert self.features.find(sm_tag('sm')) is not None, tostr(self.features)
        enabled = self.enable(resume, max_)
        if presence:
            self.send('<presence/>')
            self.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        return enabled

    def kill(self):
        """Drop the connection without </stream:stream> (a reset)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.sock.close()
        self.closed = True

    def ack(self):
        self.send("<a xmlns='%s' h='%d'/>" % (NS_SM, self.h))

    def request(self):
        """<r/>: the server's h."""
        self.send("<r xmlns='%s'/>" % NS_SM)
        el = self.wait_for(lambda e: e.tag == sm_tag('a'), what='<a/>')
        return int(el.get('h'))


def send_chat(c, to, body):
    c.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def bodies(els):
    return [e.findtext(q(NS_CLIENT, 'body')) for e in els if e.tag == q(NS_CLIENT, 'message')]


def test_feature_and_enable_without_resume(server):
    with SMClient(server) as c:
        enabled = c.sm_login('alice', resume=False)
        assert enabled.get('id') is None and enabled.get('resume') is None, tostr(enabled)
        # presence and a ping went out after enable: both counted, both handled
        assert c.request() == 2
        c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert c.request() == 3


def test_enable_with_resume_and_server_requests(server):
    with SMClient(server) as a, SMClient(server) as b:
        enabled = a.sm_login('alice', resource=unique('r'), max_=30)
        assert enabled.get('resume') in ('true', '1') and len(enabled.get('id', '')) >= 16
        assert enabled.get('max') == '30', tostr(enabled)
        b.login('bob', server.password('bob'))
        for i in range(4):
            send_chat(b, a.jid, 'm%d' % i)
        # the server asks for an ack once stanzas are unacknowledged
        a.wait_for(lambda e: bodies([e]) == ['m3'], what='m3')
        if not any(e.tag == sm_tag('r') for e in a.received):
            a.wait_for(lambda e: e.tag == sm_tag('r'), timeout=5, what='<r/>')
        a.ack()
        # acked everything: a wrong (too high) ack would close the stream now
        a.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)


def test_enable_inline_with_bind2_and_resume(server):
    """Bind 2 (XEP-0386) offers stream management inline; enabled there,
    the session resumes on a plain SASL stream later."""
    import base64
    from scramclient import NS_SASL2, Client
    NS_BIND2 = 'urn:xmpp:bind:0'
    c = Client(server.port)
    try:
        c.open()
        c.starttls()
        inline = c.features.find('%s/%s/%s/%s' % (q(NS_SASL2, 'authentication'), q(NS_SASL2, 'inline'),
                                                   q(NS_BIND2, 'bind'), q(NS_BIND2, 'inline')))
        assert inline is not None, tostr(c.features)
        assert NS_SM in [f.get('var') for f in inline.findall(q(NS_BIND2, 'feature'))], tostr(inline)
        token = base64.b64encode(('\0alice\0%s' % server.password('alice')).encode()).decode()
        c.send("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s</initial-response>"
               "<bind xmlns='%s'><tag>SM</tag><enable xmlns='%s' resume='true'/></bind></authenticate>"
               % (NS_SASL2, token, NS_BIND2, NS_SM))
        el = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'success'), q(NS_SASL2, 'failure')),
                        what='SASL2 result')
        assert el.tag == q(NS_SASL2, 'success'), tostr(el)
        jid = el.findtext(q(NS_SASL2, 'authorization-identifier'))
        enabled = el.find('%s/%s' % (q(NS_BIND2, 'bound'), sm_tag('enabled')))
        assert enabled is not None and enabled.get('resume') == 'true', tostr(el)
        f = c.wait_for(lambda e: e.tag == q(NS_STREAM, 'features'), what='stream features')
        assert f.find(sm_tag('sm')) is None, tostr(f)     # enabled already
        c.send("<iq type='get' id='p1' to='%s'><ping xmlns='%s'/></iq>" % (HOST, NS_PING))
        c.wait_iq('p1')
        c.send("<r xmlns='%s'/>" % NS_SM)
        assert c.wait_for(lambda e: e.tag == sm_tag('a'), what='<a/>').get('h') == '1'
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.sock.close()
        c.closed = True
        with SMClient(server) as again:
            again.auth('alice')
            again.send("<resume xmlns='%s' previd='%s' h='1'/>" % (NS_SM, enabled.get('id')))
            el = again.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')),
                                what='<resumed/>')
            assert el.tag == sm_tag('resumed') and el.get('h') == '1', tostr(el)
            again.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
            info = json.loads(server.ctl('--json', 'connected-users-info').stdout)
            assert [s['detached'] for s in info if s['jid'] == jid] == [False], info
    finally:
        c.close()


def test_enable_before_bind_and_twice(server):
    with SMClient(server) as c:
        c.auth('alice')
        c.send("<enable xmlns='%s'/>" % NS_SM)
        el = c.wait_for(lambda e: e.tag == sm_tag('failed'), what='<failed/>')
        assert el.find(q(NS_STANZA_ERR, 'unexpected-request')) is not None, tostr(el)
        c.bind(unique('r'))
        c.enable(resume=False)
        c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
        el = c.wait_for(lambda e: e.tag in (sm_tag('failed'), sm_tag('enabled')), what='<failed/>')
        assert el.tag == sm_tag('failed'), tostr(el)
        assert el.find(q(NS_STANZA_ERR, 'unexpected-request')) is not None, tostr(el)
        # <resume/> after bind: failed too, and the stream goes on
        c.send("<resume xmlns='%s' previd='x' h='0'/>" % NS_SM)
        el = c.wait_for(lambda e: e.tag == sm_tag('failed'), what='<failed/>')
        assert el.find(q(NS_STANZA_ERR, 'unexpected-request')) is not None, tostr(el)
        c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)


def test_ack_too_high(server):
    with SMClient(server) as c:
        c.sm_login('alice', resume=True, presence=False)
        c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        c.send("<a xmlns='%s' h='5'/>" % NS_SM)
        err = c.wait_for(lambda e: e.tag == q(NS_STREAM, 'error'), what='stream error')
        kids = {e.tag: e for e in err}
        assert q('urn:ietf:params:xml:ns:xmpp-streams', 'undefined-condition') in kids, tostr(err)
        too_high = kids.get(sm_tag('handled-count-too-high'))
        assert too_high is not None, tostr(err)
        assert too_high.get('h') == '5' and too_high.get('send-count') == '1', tostr(err)
        assert c.wait_closed()


@pytest.mark.parametrize('h', ['-1', 'abc', '4294967296', ''])
def test_bad_h(server, witness, h):
    with SMClient(server) as c:
        c.sm_login('alice', resume=False, presence=False)
        c.send("<a xmlns='%s' h='%s'/>" % (NS_SM, h))
        assert c.stream_error() == 'invalid-xml'
    witness.check()


def test_detached_session_replaced_by_a_new_bind(server):
    """Binding the resource of a detached session ends it: its
    unacknowledged messages are stored, and come at the next login."""
    res = unique('same')
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        a = SMClient(server)
        a.sm_login('erin', resource=res)
        send_chat(b, a.jid, 'replaced-0')
        a.wait_message('replaced-0')
        a.kill()
        time.sleep(0.5)
        with RawClient(server.port) as again:
            again.login('erin', server.password('erin'), resource=res, presence=False)
            time.sleep(0.5)
        got = offline_bodies(server, 'erin', ['replaced-0'])
        assert bodies(got) == ['replaced-0'], [tostr(e) for e in got]
    assert find_lines('detached session erin@%s/%s replaced' % (HOST, res), server.log())


def test_replaced_session_unacked_goes_to_the_new_session(server):
    """A client logs in again with the resource its older session still
    holds, whose connection went silent without closing, and sends its
    presence at once.  The older session's unacknowledged message is
    stored as the session is replaced, not once its connection has
    finished closing (seconds later, after the new session's offline
    fetch): the new session gets it, and nothing is left stored."""
    from test_presence import new_user
    from test_sasl2_sm import wait_log
    user = new_user(server, 'smr')
    with SMClient(server) as b, SMClient(server) as old:
        b.login('bob', server.password('bob'))
        old.sm_login(user, resource='phone')
        send_chat(b, old.jid, 'unacked-then-replaced')
        old.wait_message('unacked-then-replaced')
        with SMClient(server) as new:
            new.login(user, server.password(user), resource='phone', presence=False)
            new.send('<presence/>')
            new.wait_message('unacked-then-replaced', timeout=10)
            wait_log(server, 'offline: 1 offline message delivered to %s' % re.escape(old.jid),
                     'the stored message was not delivered to the new session')
    assert find_lines(r'session %s ended with \d+ unacknowledged stanzas: 1 messages to offline storage'
                      % re.escape(old.jid), server.log())


def test_resume_after_killed_connection(server):
    res = unique('phone')
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        a = SMClient(server)
        enabled = a.sm_login('alice', resource=res)
        previd = enabled.get('id')
        for i in range(3):
            send_chat(b, a.jid, 'before-%d' % i)
        a.wait_for(lambda e: bodies([e]) == ['before-2'], what='before-2')
        h_first = a.got.index(next(e for e in a.got if bodies([e]) == ['before-0'])) + 1
        # alice says something and the connection dies before any ack
        send_chat(a, b.jid, 'from-alice')
        time.sleep(0.3)
        a.kill()
        assert b.wait_message('from-alice').get('from') == a.jid
        # messages for alice while nobody is connected
        time.sleep(0.5)
        for i in range(2):
            send_chat(b, a.jid, 'while-away-%d' % i)
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        sent_by_alice = 3   # presence, ping, message
        # the operator sees the session, detached
        info = json.loads(server.ctl('--json', 'connected-users-info').stdout)
        mine = [s for s in info if s['jid'] == a.jid]
        assert len(mine) == 1 and mine[0]['detached'] is True, info

        c = SMClient(server)
        try:
            c.auth('alice')
            c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h_first))
            el = c.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')),
                            what='<resumed/>')
            assert el.tag == sm_tag('resumed'), tostr(el)
            assert el.get('h') == str(sent_by_alice), tostr(el)
            c.counting = True
            c.h = h_first
            want = ['before-1', 'before-2', 'while-away-0', 'while-away-1']
            deadline = time.monotonic() + 5
            while bodies(c.got) != want and time.monotonic() < deadline:
                c.next(deadline - time.monotonic())
            assert bodies(c.got) == want, [tostr(e) for e in c.got]
            # the session goes on, bound to the same full JID
            send_chat(b, a.jid, 'after')
            got = c.wait_message('after')
            assert got.get('to') == a.jid
            send_chat(c, b.jid, 'alice-again')
            assert b.wait_message('alice-again').get('from') == a.jid
            c.ack()
            c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        finally:
            c.close()
    assert find_lines('session .*%s resumed: 4 stanzas sent again' % res, server.log())


def test_resume_with_more_than_max_output_queued(server):
    """A resumption sends the whole unacknowledged queue at once: 100
    messages of 11 KB are more than limits.max_output (1M here), but a
    client that reads gets <resumed/> and all of them."""
    res = unique('big-')
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        a = SMClient(server)
        previd = a.sm_login('alice', resource=res).get('id')
        h = a.h
        a.kill()
        want = ['w%03d' % i for i in range(100)]
        for w in want:
            send_chat(b, a.jid, '%s %s' % (w, 'z' * 11000))
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        c = SMClient(server, timeout=30)
        try:
            c.auth('alice')
            c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))
            el = c.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')),
                            what='<resumed/>')
            assert el.tag == sm_tag('resumed'), tostr(el)
            c.counting = True
            c.h = h
            deadline = time.monotonic() + 30
            while len(bodies(c.got)) < len(want) and time.monotonic() < deadline:
                el = c.next(deadline - time.monotonic())
                assert el is not None, 'closed after %d messages' % len(bodies(c.got))
            assert [x[:4] for x in bodies(c.got)] == want
            c.ack()          # nothing is left to store offline for the next tests
            c.request()
        finally:
            c.close()


NS_MAM = 'urn:xmpp:mam:2'
NS_RSM = 'http://jabber.org/protocol/rsm'


def held_answers(els, iq_id, ping_id):
    """The stanzas of a MAM query and a ping as ('r', archive id),
    ('fin', first, last) and ('ping',), in the order given."""
    out = []
    for e in els:
        res = e.find(q(NS_MAM, 'result'))
        if e.tag == q(NS_CLIENT, 'message') and res is not None:
            out.append(('r', res.get('id')))
        elif e.tag == q(NS_CLIENT, 'iq') and e.get('id') == iq_id:
            rsm = e.find('%s/%s' % (q(NS_MAM, 'fin'), q(NS_RSM, 'set')))
            out.append(('fin', rsm.findtext(q(NS_RSM, 'first')), rsm.findtext(q(NS_RSM, 'last'))))
        elif e.tag == q(NS_CLIENT, 'iq') and e.get('id') == ping_id:
            out.append(('ping',))
    return out


def test_held_answers_resent_in_order(server):
    """The answers to one held query (MAM results, then the iq result) and
    the answer to a ping sent after it: written in that order, queued for
    resumption in it, and sent again in it."""
    user, off = unique('smq'), unique('smoff')
    server.register(user, HOST, 'sm-secret')
    server.register(off, HOST, 'sm-secret')
    a = SMClient(server)
    previd = a.sm_login(user, resource=unique('phone')).get('id')
    for i in range(3):
        send_chat(a, '%s@%s' % (off, HOST), 'archived-%d' % i)
    a.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    h_before = a.h
    iq_id, ping_id = unique('q'), unique('p')
    a.send("<message to='%s@%s' type='chat'><body>stored</body></message>"
           "<iq type='set' id='%s'><query xmlns='%s'><set xmlns='%s'><max>3</max></set></query></iq>"
           "<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>"
           % (off, HOST, iq_id, NS_MAM, NS_RSM, ping_id, HOST, NS_PING))
    deadline = time.monotonic() + 10
    while len(held_answers(a.got[h_before:], iq_id, ping_id)) < 5 and time.monotonic() < deadline:
        a.next(deadline - time.monotonic())
    first = held_answers(a.got[h_before:], iq_id, ping_id)
    ids = [x[1] for x in first[:3]]
    assert first == [('r', ids[0]), ('r', ids[1]), ('r', ids[2]), ('fin', ids[0], ids[2]), ('ping',)], first
    assert sorted(ids, key=int) == ids and len(set(ids)) == 3, ids
    a.kill()

    c = SMClient(server)
    try:
        c.auth(user)
        c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h_before))
        el = c.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
        assert el.tag == sm_tag('resumed'), tostr(el)
        c.counting = True
        deadline = time.monotonic() + 5
        while len(held_answers(c.got, iq_id, ping_id)) < 5 and time.monotonic() < deadline:
            c.next(deadline - time.monotonic())
        assert held_answers(c.got, iq_id, ping_id) == first, [tostr(e) for e in c.got]
    finally:
        c.close()


def test_resume_replaces_open_connection(server):
    a = SMClient(server)
    enabled = a.sm_login('alice', resource=unique('r'))
    with SMClient(server) as c:
        c.auth('alice')
        c.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, enabled.get('id')))
        el = c.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
        assert el.tag == sm_tag('resumed'), tostr(el)
        assert a.stream_error() == 'conflict'
        c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    a.close()


def test_resume_someone_elses_or_unknown_session(server, witness):
    a = SMClient(server)
    enabled = a.sm_login('alice', resource=unique('r'))
    try:
        for previd in (enabled.get('id'), 'no-such-session', enabled.get('id')[:-1] + '_'):
            with SMClient(server) as c:
                c.auth('bob')
                c.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
                el = c.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')),
                                what='<failed/>')
                assert el.tag == sm_tag('failed'), tostr(el)
                assert el.find(q(NS_STANZA_ERR, 'item-not-found')) is not None, tostr(el)
                # the stream goes on: bob binds normally
                c.bind(unique('r'))
                c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        # alice's session was not touched
        a.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    finally:
        a.close()
    witness.check()


def test_many_requests(server, witness):
    with SMClient(server) as c:
        c.sm_login('alice', resume=False, presence=False)
        n = 10000
        c.send(("<r xmlns='%s'/>" % NS_SM) * n)
        got = 0
        deadline = time.monotonic() + 30
        while got < n and time.monotonic() < deadline:
            el = c.next(deadline - time.monotonic())
            assert el is not None, 'stream closed after %d answers' % got
            if el.tag == sm_tag('a'):
                assert el.get('h') == '0'
                got += 1
        assert got == n
        c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    witness.check()


def offline_bodies(server, user, want, resource=None):
    """Log user in (available) and read the offline messages."""
    with RawClient(server.port) as r:
        r.login(user, server.password(user), resource=resource, presence=False)
        r.send('<presence/>')
        got = []
        deadline = time.monotonic() + 10
        while len(got) < len(want) and time.monotonic() < deadline:
            try:
                el = r.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message'),
                                timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            got.append(el)
        return got


def test_expiry_stores_unacked_messages(server):
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        a = SMClient(server)
        a.sm_login('carol', resource=unique('r'), max_=2)
        send_chat(b, a.jid, 'exp-0')
        a.wait_message('exp-0')
        a.ack()
        send_chat(b, a.jid, 'exp-1')
        a.wait_message('exp-1')
        a.kill()
        time.sleep(0.5)
        send_chat(b, a.jid, 'exp-2')
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        time.sleep(3.5)
    got = offline_bodies(server, 'carol', ['exp-1', 'exp-2'])
    assert bodies(got) == ['exp-1', 'exp-2'], [tostr(e) for e in got]
    for m in got:
        delays = m.findall(q(NS_DELAY, 'delay'))
        assert len(delays) == 1 and delays[0].get('from') == HOST, tostr(m)
    assert find_lines('detached session .* expired', server.log())


def test_unacked_on_clean_close_stored(server):
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        a = SMClient(server)
        a.sm_login('erin', resource=unique('r'), resume=False)
        send_chat(b, a.jid, 'close-0')
        a.wait_message('close-0')
        a.close()     # </stream:stream> without acknowledging close-0
        time.sleep(0.5)
    got = offline_bodies(server, 'erin', ['close-0'])
    assert bodies(got) == ['close-0'], [tostr(e) for e in got]


def test_unacked_copies_and_archive_results_dropped(server):
    """A carbon copy and an archive query's results that the session never
    acknowledged are made for that session alone: when it ends they are
    dropped, not stored offline (where they would take the offline quota
    from real messages), and the user's next message is stored as usual."""
    from test_presence import new_user
    user = new_user(server, 'smc')
    with SMClient(server) as b, RawClient(server.port) as other:
        b.login('bob', server.password('bob'))
        other.login(user, server.password(user), resource='other', presence=False)
        other.send('<presence/>')
        a = SMClient(server)
        a.sm_login(user, resource='phone', resume=False)
        r = a.iq('set', "<enable xmlns='urn:xmpp:carbons:2'/>")
        assert r.get('type') == 'result', tostr(r)
        send_chat(b, other.jid, 'to-other')
        other.wait_message('to-other')
        a.wait_for(lambda e: e.find(q('urn:xmpp:carbons:2', 'received')) is not None, what='a carbon copy')
        a.send("<iq type='set' id='mamq'><query xmlns='urn:xmpp:mam:2' queryid='qq'/></iq>")
        a.wait_iq('mamq')
        results = [e for e in a.got if e.find(q('urn:xmpp:mam:2', 'result')) is not None]
        assert results, [tostr(e) for e in a.got]
        other.close()
        a.close()     # </stream:stream> without acknowledging anything
        time.sleep(0.5)
        send_chat(b, '%s@%s' % (user, HOST), 'after-close')
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    got = offline_bodies(server, user, ['after-close'])
    assert bodies(got) == ['after-close'], [tostr(e) for e in got]
    assert find_lines('session %s@%s/phone ended with .*: 0 messages to offline storage' % (user, HOST),
                      server.log())


def bare_pair(server, prefix, laptop_max=None):
    """A new user with two resumable sessions, 'laptop' and 'phone', both
    available at priority 0 (a message to the bare JID goes to both, RFC
    6121 §8.5.2.1.1); the phone is kept 2 s after its connection drops."""
    from test_presence import new_user
    user = new_user(server, prefix)
    laptop, phone = SMClient(server), SMClient(server)
    laptop.sm_login(user, resource='laptop', max_=laptop_max)
    phone.sm_login(user, resource='phone', max_=2)
    return user, laptop, phone


def session_ended(server, jid):
    """Wait for the line of jid's session that ended with stanzas its
    client never acknowledged, and return it."""
    from test_sasl2_sm import wait_log
    pattern = 'session %s ended with' % re.escape(jid)
    wait_log(server, pattern, 'the session of %s did not end' % jid)
    return find_lines(pattern, server.log())[-1]


def test_bare_jid_message_another_session_has_not_stored(server):
    """A message to the bare JID goes to the laptop and the phone.  The
    laptop acknowledges it and stays; the phone's connection dies before
    it acknowledges it, and its session expires: the message is not stored
    offline (the laptop has it; stored, it would come again at the next
    login)."""
    from test_sasl2_sm import kill
    user, laptop, phone = bare_pair(server, 'smb')
    bare = '%s@%s' % (user, HOST)
    with SMClient(server) as b, laptop:
        b.login('bob', server.password('bob'))
        send_chat(b, bare, 'both-0')
        laptop.wait_message('both-0')
        phone.wait_message('both-0')
        laptop.ack()
        laptop.request()
        kill(server, phone)
        line = session_ended(server, phone.jid)
        assert re.search(': 0 messages to offline storage, 1 kept by another session', line), line
        assert server.db_rows('offline_messages', user) == 0
        assert laptop.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'


def test_bare_jid_message_stored_when_the_other_session_left(server):
    """The laptop got and acknowledged the message too, but it went
    offline before the phone's session expired: the phone's copy is stored
    offline (no session that got it is still there)."""
    from test_sasl2_sm import kill, wait_log
    user, laptop, phone = bare_pair(server, 'smb')
    bare = '%s@%s' % (user, HOST)
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        send_chat(b, bare, 'both-1')
        laptop.wait_message('both-1')
        phone.wait_message('both-1')
        laptop.ack()
        laptop.request()
        laptop.close()
        wait_log(server, 'session %s closed' % re.escape(laptop.jid), 'the laptop did not leave')
        kill(server, phone)
        line = session_ended(server, phone.jid)
        assert re.search(': 1 messages to offline storage', line), line
    got = offline_bodies(server, user, ['both-1'])
    assert bodies(got) == ['both-1'], [tostr(e) for e in got]


def test_bare_jid_message_of_two_sessions_that_end_stored_once(server):
    """Both connections die before either client acknowledged the message:
    the session that ends first leaves it to the other, which stores it
    when it ends in turn: it is stored once, not lost and not twice."""
    from test_sasl2_sm import kill
    user, laptop, phone = bare_pair(server, 'smb', laptop_max=2)
    bare = '%s@%s' % (user, HOST)
    with SMClient(server) as b:
        b.login('bob', server.password('bob'))
        send_chat(b, bare, 'both-2')
        laptop.wait_message('both-2')
        phone.wait_message('both-2')
        kill(server, phone)
        kill(server, laptop)
        session_ended(server, phone.jid)
        session_ended(server, laptop.jid)
        send_chat(b, bare, 'after')
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    got = offline_bodies(server, user, ['both-2', 'after'])
    assert bodies(got) == ['both-2', 'after'], [tostr(e) for e in got]


def test_max_unacked(small):
    with SMClient(small) as b:
        b.login('bob', small.password('bob'))
        a = SMClient(small)
        a.sm_login('alice', resource=unique('r'), presence=True)
        a.ack()
        want = ['many-%d' % i for i in range(12)]
        for body in want:
            send_chat(b, a.jid, body)
        assert a.stream_error(timeout=10) == 'policy-violation'
        a.close()
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
    got = offline_bodies(small, 'alice', want)
    # the messages before the limit were unacknowledged, the later ones
    # found no session: all of them are there, in order
    assert bodies(got) == want, [tostr(e) for e in got]


def test_ack_counts_only_committed_messages(server):
    """The moment <a h=''/> comes, every message it counts is committed:
    read from outside, the rows are there."""
    user = unique('smack')
    server.register(user, HOST, 'ack-pw')
    with SMClient(server) as a:
        a.sm_login('alice', resource=unique('r'), presence=False)
        n = 50
        a.send(''.join("<message to='%s@%s' type='chat'><body>ack-%d</body></message>"
                       % (user, HOST, i) for i in range(n)) + "<r xmlns='%s'/>" % NS_SM)
        el = a.wait_for(lambda e: e.tag == sm_tag('a'), what='<a/>')
        assert el.get('h') == str(n)
        assert server.db_rows('offline_messages', user) == n


def test_max_unacked_while_detached(small):
    with SMClient(small) as b:
        b.login('bob', small.password('bob'))
        a = SMClient(small)
        a.sm_login('carol', resource=unique('r'))
        a.ack()
        a.kill()
        time.sleep(0.5)
        want = ['away-%d' % i for i in range(12)]
        for body in want:
            send_chat(b, a.jid, body)
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        time.sleep(0.5)
    got = offline_bodies(small, 'carol', want)
    assert bodies(got) == want, [tostr(e) for e in got]
    assert find_lines('detached session carol@%s/.* expired' % HOST, small.log())


def test_resume_with_h_too_high(server):
    a = SMClient(server)
    enabled = a.sm_login('alice', resource=unique('r'))
    a.kill()
    time.sleep(0.3)
    with SMClient(server) as c:
        c.auth('alice')
        c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, enabled.get('id'), a.h + 5))
        err = c.wait_for(lambda e: e.tag == q(NS_STREAM, 'error'), what='stream error')
        too_high = err.find(sm_tag('handled-count-too-high'))
        assert too_high is not None, tostr(err)
        assert too_high.get('send-count') == str(a.h), tostr(err)
        assert c.wait_closed()


def test_acked_messages_survive_sigkill(fresh_server):
    srv = fresh_server
    with SMClient(srv) as a:
        a.sm_login('alice', resource=unique('r'))
        n = 20
        for i in range(n):
            send_chat(a, 'erin@%s' % HOST, 'kill-%d' % i)
        h = a.request()
        assert h == n + 2, h   # presence, ping and every message were handled
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        srv._logf.close()
    srv.start()
    got = offline_bodies(srv, 'erin', ['kill-%d' % i for i in range(n)])
    assert bodies(got) == ['kill-%d' % i for i in range(n)], [tostr(e) for e in got]


def test_unacked_messages_kept_over_a_restart(fresh_server):
    """A stopping server ends the sessions, live and detached: their
    unacknowledged messages are in offline storage after the restart."""
    srv = fresh_server
    with SMClient(srv) as b:
        b.login('bob', srv.password('bob'))
        live = SMClient(srv)
        live.sm_login('alice', resource=unique('r'))
        gone = SMClient(srv)
        gone.sm_login('carol', resource=unique('r'))
        send_chat(b, live.jid, 'stop-live')
        send_chat(b, gone.jid, 'stop-gone')
        live.wait_message('stop-live')
        gone.wait_message('stop-gone')
        gone.kill()
        time.sleep(0.5)
        send_chat(b, gone.jid, 'stop-gone-2')
        b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        rc = srv.stop()
        assert rc == 0, srv.log()[-3000:]
        live.close()
    srv.start()
    assert bodies(offline_bodies(srv, 'alice', ['stop-live'])) == ['stop-live']
    assert bodies(offline_bodies(srv, 'carol', ['stop-gone', 'stop-gone-2'])) == \
        ['stop-gone', 'stop-gone-2']


def test_stop_waits_for_offline_stores_of_detached_sessions(fresh_server):
    """A stop with no connection left but a detached session whose
    unacknowledged message is still being written to offline storage (the
    database is locked for a second): the stop waits for that write while
    the hosts and modules exist, and the message is there after the
    restart."""
    import sqlite3
    import threading
    srv = fresh_server
    if srv.storage != 'sqlite':
        pytest.skip('locks the SQLite file from outside')
    with SMClient(srv) as b:
        b.login('bob', srv.password('bob'))
        gone = SMClient(srv)
        gone.sm_login('carol', resource=unique('r'))
        send_chat(b, gone.jid, 'locked-stop')
        gone.wait_message('locked-stop')
    gone.kill()
    deadline = time.monotonic() + 10
    while not find_lines('connection of %s lost' % gone.jid, srv.log()):
        assert time.monotonic() < deadline, 'the server did not see the drop'
        time.sleep(0.1)
    db = sqlite3.connect(str(srv.dir / 'parley.db'), timeout=10, check_same_thread=False)
    db.execute('BEGIN EXCLUSIVE')
    unlock = threading.Timer(1.0, db.rollback)
    unlock.start()
    try:
        rc = srv.stop()
    finally:
        unlock.join()
        db.close()
    assert rc == 0, srv.log()[-3000:]
    assert sanitizer_lines(srv.log()) == [], srv.log()[-6000:]
    srv.start()
    assert bodies(offline_bodies(srv, 'carol', ['locked-stop'])) == ['locked-stop']


def test_reload_turns_it_off_for_new_sessions_only(fresh_server):
    srv = fresh_server
    with SMClient(srv) as a:
        enabled = a.sm_login('alice', resource=unique('r'))
        srv.global_auth = 'stream_management:\n  enabled: false\n'
        srv.write_config()
        r = srv.ctl('reload')
        assert r.returncode == 0 and 'stream_management: applied' in r.stdout, (r.stdout, r.stderr)
        assert a.request() == 2      # the session keeps it
        with SMClient(srv) as b:
            b.login('bob', srv.password('bob'), presence=False)
            assert b.features.find(sm_tag('sm')) is None, tostr(b.features)
        a.kill()
        time.sleep(0.5)
        with SMClient(srv) as c:     # and the dropped one may still resume
            c.auth('alice')
            c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, enabled.get('id'), a.h))
            el = c.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
            assert el.tag == sm_tag('resumed'), tostr(el)


def test_slixmpp_interop(server, run):
    import asyncio
    from parleytest import login, logout, next_message

    async def go():
        bob = await login(server, 'bob', plugins=('xep_0198',))
        sm = bob['xep_0198']
        assert sm.enabled_in or sm.enabled_out, 'slixmpp did not enable stream management'
        assert sm.sm_id, 'no resumption id'
        alice = await login(server, 'alice')
        for i in range(5):
            alice.send_message(mto=bob.boundjid.bare, mbody='slix-%d' % i, mtype='chat')
        for i in range(5):
            m = await next_message(bob, pred=lambda m: m['body'].startswith('slix-'))
            assert m['body'] == 'slix-%d' % i
        sm.request_ack()
        deadline = time.monotonic() + 5
        while sm.last_ack != sm.seq and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert sm.last_ack == sm.seq, (sm.last_ack, sm.seq)
        await logout(alice, bob)
    run(go())
