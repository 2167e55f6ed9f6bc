"""Offline messages (XEP-0160, RFC 6121 8.5.2.1.1): stored while the user has
no available resource, delivered in order with <delay/> at the next
available presence, bounced when they cannot be stored, kept across a
crash, removed with the account."""
import signal
import time

import pytest

import parleytest
from parleytest import (HOST, NS_CLIENT, NS_DISCO_INFO, RawClient, q, stanza_error, tostr,
                        unique)

NS_DELAY = 'urn:xmpp:delay'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'


# ---- helpers ----------------------------------------------------------------



def wait_rows(srv, user, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.db_rows('offline_messages', user) == n:
            return
        time.sleep(0.05)
    raise AssertionError('%s has %d offline rows, expected %d'
                         % (user, srv.db_rows('offline_messages', user), n))


def new_user(srv, prefix='off'):
    user, pw = unique(prefix), 'offline-pw'
    srv.register(user, HOST, pw)
    return user, pw


def sender(srv, resource=None):
    c = RawClient(srv.port)
    c.login('alice', srv.password('alice'), resource=resource or unique('s-'))
    return c


def send_chat(c, to, body, typ='chat', extra=''):
    c.send("<message to='%s' type='%s' id='%s'><body>%s</body>%s</message>"
           % (to, typ, unique('m'), body, extra))


def sync(c):
    """A round trip: the server has routed everything c sent before."""
    el = c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert el.get('type') == 'result', tostr(el)


def come_online(srv, user, pw, resource=None):
    """Log in without presence, then send the initial presence; returns the
    client, whose queue holds what the server sent after it."""
    c = RawClient(srv.port)
    c.login(user, pw, resource=resource or unique('r-'), presence=False)
    c.send('<presence/>')
    return c


def messages(c, n, timeout=10):
    """The next n <message/> elements, in order (nothing else is expected
    in between but is skipped)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        el = c.next(max(0.1, deadline - time.monotonic()))
        assert el is not None, 'stream closed after %s' % [tostr(e) for e in out]
        if el.tag == q(NS_CLIENT, 'message'):
            out.append(el)
    return out


def no_message(c, wait=1.0):
    """Nothing but non-message traffic for wait seconds."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            el = c.next(left)
        except TimeoutError:
            return
        assert el is None or el.tag != q(NS_CLIENT, 'message'), 'unexpected: %s' % tostr(el)
        if el is None:
            return


def bounce_for(c, body, timeout=10):
    return c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error'
                      and e.findtext(q(NS_CLIENT, 'body')) == body,
                      timeout=timeout, what='bounce of %r' % body)


def wait_offline(srv, user, timeout=10):
    """Until the server has no session of user left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = srv.ctl('connected-users')
        assert r.returncode == 0, (r.returncode, r.stderr)
        if '%s@%s/' % (user, HOST) not in r.stdout:
            return
        time.sleep(0.05)
    raise AssertionError('%s is still connected' % user)


def own_server(tmp_path_factory, name, offline_options=None, storage_timeout=None, max_output=None):
    """storage_timeout: a database store's job deadline instead of the
    tests' 5 s (a burst on a loaded machine must not expire and bounce)."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp(name))
    text = srv.config.read_text()
    if max_output is not None:
        marker = '  max_stanza_size: 64K\n'
        assert marker in text
        text = text.replace(marker, marker + '  max_output: %s\n' % max_output, 1)
    if offline_options is not None:
        marker = 'modules:\n  disco: {}\n'
        assert marker in text
        text = text.replace(marker, marker + '  offline: %s\n' % offline_options, 1)
    if storage_timeout is not None:
        text = text.replace('timeout: 5s }', 'timeout: %s }' % storage_timeout)
    srv.config.write_text(text)
    srv.start_with_users()
    return srv


@pytest.fixture(scope='module')
def quota_server(tmp_path_factory):
    srv = own_server(tmp_path_factory, 'parley-offline-quota', '{ max_per_user: 2 }')
    yield srv
    srv.finish()


@pytest.fixture(scope='module')
def small_output_server(tmp_path_factory):
    srv = own_server(tmp_path_factory, 'parley-offline-output', max_output='64K')
    yield srv
    srv.finish()


@pytest.fixture
def crash_server(tmp_path_factory):
    srv = own_server(tmp_path_factory, 'parley-offline-crash')
    yield srv
    srv.finish()


@pytest.fixture
def burst_server(tmp_path_factory):
    srv = own_server(tmp_path_factory, 'parley-offline-burst', '{ max_per_user: 2000 }', '120s')
    yield srv
    srv.finish()


# ---- tests ------------------------------------------------------------------

def test_msgoffline_advertised(server, raw):
    c = raw()
    c.login('alice', server.password('alice'), resource=unique('d-'))
    el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=HOST)
    assert el.get('type') == 'result', tostr(el)
    features = [f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))]
    assert 'msgoffline' in features, tostr(el)


def test_delivered_in_order_with_delay_then_gone(server):
    user, pw = new_user(server)
    a = sender(server)
    bodies = [unique('offline-%d-' % i) for i in range(3)]
    try:
        for b in bodies:
            send_chat(a, '%s@%s' % (user, HOST), b)
        sync(a)
        wait_rows(server, user, 3)

        b1 = come_online(server, user, pw)
        try:
            got = messages(b1, 3)
            assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == bodies, \
                [tostr(m) for m in got]
            for m in got:
                assert m.get('from') == a.jid, tostr(m)
                assert m.get('type') == 'chat', tostr(m)
                delay = m.find(q(NS_DELAY, 'delay'))
                assert delay is not None, tostr(m)
                assert delay.get('from') == HOST, tostr(m)
                assert time.strptime(delay.get('stamp'), '%Y-%m-%dT%H:%M:%SZ'), tostr(m)
            # the sender got no error for them
            no_message(a, 0.5)
            # delivered once: another session of the user gets nothing
            wait_rows(server, user, 0)
            b2 = come_online(server, user, pw)
            try:
                sync(b2)
                no_message(b2, 1.0)
            finally:
                b2.close()
            # and a message while online comes at once, without <delay/>
            live = unique('live-')
            send_chat(a, '%s@%s' % (user, HOST), live)
            m = b1.wait_message(live)
            assert m.find(q(NS_DELAY, 'delay')) is None, tostr(m)
        finally:
            b1.close()
    finally:
        a.close()


def test_messages_being_stored_at_login_are_delivered(server):
    """Messages still being stored (the block list and privacy reads before
    the write) when the recipient's initial presence arrives are in what its
    session gets: the fetch waits for them, none stays in the store until
    the next login."""
    user, pw = new_user(server, 'offrace')
    a = sender(server)
    b = RawClient(server.port)
    try:
        b.login(user, pw, resource=unique('r-'), presence=False)
        bodies = [unique('race-%d-' % i) for i in range(50)]
        for body in bodies:
            send_chat(a, '%s@%s' % (user, HOST), body)
        sync(a)   # read and routed: the stores are under way, not finished
        b.send('<presence/>')
        got = messages(b, len(bodies))
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == bodies, \
            [tostr(m) for m in got]
        wait_rows(server, user, 0)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize('away', ["<presence type='unavailable'/>",
                                  '<presence><show>away</show><priority>-1</priority></presence>'])
def test_delivered_when_the_same_session_is_back(server, away):
    """XEP-0160 §2: a session that went unavailable or to a negative
    priority without closing gets what was stored meanwhile as soon as it
    sends available presence with a non-negative priority again, not at
    the next login."""
    user, pw = new_user(server)
    c = come_online(server, user, pw)
    sync(c)
    c.send(away)
    sync(c)
    a = sender(server)
    send_chat(a, '%s@%s' % (user, HOST), 'while away')
    sync(a)
    wait_rows(server, user, 1)
    c.send('<presence><priority>5</priority></presence>')
    m = messages(c, 1)[0]
    assert m.findtext(q(NS_CLIENT, 'body')) == 'while away', tostr(m)
    assert m.find(q(NS_DELAY, 'delay')) is not None, tostr(m)
    wait_rows(server, user, 0)
    # and again: each time the session is back
    c.send(away)
    sync(c)
    send_chat(a, '%s@%s' % (user, HOST), 'away again')
    sync(a)
    wait_rows(server, user, 1)
    c.send('<presence/>')
    assert messages(c, 1)[0].findtext(q(NS_CLIENT, 'body')) == 'away again'
    a.close()
    c.close()


def test_chat_state_alone_is_not_stored(server):
    user, pw = new_user(server)
    a = sender(server)
    try:
        a.send("<message to='%s@%s' type='chat'><composing xmlns='%s'/></message>"
               % (user, HOST, NS_CHATSTATES))
        body = unique('after-state-')
        send_chat(a, '%s@%s' % (user, HOST), body, extra="<active xmlns='%s'/>" % NS_CHATSTATES)
        sync(a)
        wait_rows(server, user, 1)
        no_message(a, 0.5)          # no bounce for the chat state either
        b = come_online(server, user, pw)
        try:
            got = messages(b, 1)
            assert got[0].findtext(q(NS_CLIENT, 'body')) == body, tostr(got[0])
            no_message(b, 1.0)
        finally:
            b.close()
    finally:
        a.close()


def test_headline_and_groupchat_not_stored(server):
    user, pw = new_user(server)
    a = sender(server)
    try:
        send_chat(a, '%s@%s' % (user, HOST), unique('headline-'), typ='headline')
        gc = unique('groupchat-')
        send_chat(a, '%s@%s' % (user, HOST), gc, typ='groupchat')
        assert stanza_error(bounce_for(a, gc)) == 'service-unavailable'
        sync(a)
        time.sleep(0.3)
        assert server.db_rows('offline_messages', user) == 0
    finally:
        a.close()


def test_quota_full_bounces_resource_constraint(quota_server):
    srv = quota_server
    user, pw = new_user(srv)
    a = sender(srv)
    bodies = [unique('q%d-' % i) for i in range(3)]
    try:
        for b in bodies:
            send_chat(a, '%s@%s' % (user, HOST), b)
        err = bounce_for(a, bodies[2])
        assert stanza_error(err) == 'resource-constraint', tostr(err)
        assert err.get('from') == '%s@%s' % (user, HOST), tostr(err)
        # the recipient's archive id stays the recipient's (XEP-0313)
        assert err.find(q('urn:xmpp:sid:0', 'stanza-id')) is None, tostr(err)
        no_message(a, 0.5)          # the first two were kept
        assert srv.db_rows('offline_messages', user) == 2
        b = come_online(srv, user, pw)
        try:
            got = messages(b, 2)
            assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == bodies[:2]
            no_message(b, 1.0)
        finally:
            b.close()
        # room again once delivered
        wait_rows(srv, user, 0)
        wait_offline(srv, user)
        again = unique('q-again-')
        send_chat(a, '%s@%s' % (user, HOST), again)
        sync(a)
        wait_rows(srv, user, 1)
        no_message(a, 0.5)
    finally:
        a.close()


def test_nonexistent_user_bounces_service_unavailable(server):
    a = sender(server)
    try:
        ghost = unique('ghost')
        body = unique('to-nobody-')
        send_chat(a, '%s@%s' % (ghost, HOST), body)
        err = bounce_for(a, body)
        assert stanza_error(err) == 'service-unavailable', tostr(err)
        assert server.db_rows('offline_messages', ghost) == 0
    finally:
        a.close()


def test_stored_messages_survive_sigkill(crash_server):
    srv = crash_server
    user, pw = new_user(srv)
    a = sender(srv)
    bodies = [unique('crash-%d-' % i) for i in range(3)]
    try:
        for b in bodies:
            send_chat(a, '%s@%s' % (user, HOST), b)
        sync(a)
        wait_rows(srv, user, 3)     # committed: from here on they are the server's
    finally:
        a.close()
    srv.proc.send_signal(signal.SIGKILL)
    assert srv.wait_exit(10) == -signal.SIGKILL
    srv._logf.close()
    srv.start()
    b = come_online(srv, user, pw)
    try:
        got = messages(b, 3)
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == bodies
        assert all(m.find(q(NS_DELAY, 'delay')) is not None for m in got)
    finally:
        b.close()
    wait_rows(srv, user, 0)


BURST = 1000


def test_an_answer_means_every_earlier_message_is_stored(burst_server):
    """RFC 6120 10.1: once the server answers a stanza, every stanza the
    stream sent before it is handled, and for a message to an offline user
    that means committed.  1000 messages in one write, then a ping; the
    server is killed the moment the ping's answer arrives, and all 1000
    are there after the restart, in order."""
    srv = burst_server
    user, pw = new_user(srv, 'burst')
    bodies = ['burst-%04d' % i for i in range(BURST)]
    a = sender(srv)
    try:
        a.send(''.join("<message to='%s@%s' type='chat' id='b%d'><body>%s</body></message>"
                       % (user, HOST, i, b) for i, b in enumerate(bodies)))
        a.send("<iq type='get' id='after-burst' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
               % HOST)
        answer = a.wait_iq('after-burst', timeout=120)
        srv.proc.send_signal(signal.SIGKILL)   # nothing more may reach the store
        assert answer.get('type') == 'result', tostr(answer)
    finally:
        a.close()
    assert srv.wait_exit(10) == -signal.SIGKILL
    srv._logf.close()
    assert srv.db_rows('offline_messages', user) == BURST
    srv.start()
    b = come_online(srv, user, pw)
    try:
        got = messages(b, BURST, timeout=60)
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == bodies
    finally:
        b.close()
    wait_rows(srv, user, 0)


def test_more_than_max_output_is_delivered(server):
    """The stored messages come at once at login: 100 of 11 KB are more than
    limits.max_output (1M here), but a client that reads takes them all,
    and then they are deleted.  The output queue is judged by what the
    client takes, not by the size of one burst."""
    user, pw = new_user(server, 'big')
    to = '%s@%s' % (user, HOST)
    s = sender(server)
    try:
        for i in range(100):
            send_chat(s, to, 'm%03d %s' % (i, 'z' * 11000))
        sync(s)
    finally:
        s.close()
    wait_rows(server, user, 100)
    c = come_online(server, user, pw)
    try:
        got = messages(c, 100, timeout=30)
        assert [m.findtext(q(NS_CLIENT, 'body'))[:4] for m in got] == ['m%03d' % i for i in range(100)]
        wait_rows(server, user, 0)
    finally:
        c.close()


def test_more_than_the_output_ceiling_is_delivered(small_output_server):
    """With max_output 64K, a stream's queue may hold 1M at most (16 times);
    100 stored messages of 11 KB are more, so they go to the session as it
    writes them instead of all at once, and all arrive."""
    srv = small_output_server
    user, pw = new_user(srv, 'ceil')
    s = sender(srv)
    try:
        for i in range(100):
            send_chat(s, '%s@%s' % (user, HOST), 'm%03d %s' % (i, 'z' * 11000))
        sync(s)
    finally:
        s.close()
    wait_rows(srv, user, 100)
    c = come_online(srv, user, pw)
    try:
        got = messages(c, 100, timeout=30)
        assert [m.findtext(q(NS_CLIENT, 'body'))[:4] for m in got] == ['m%03d' % i for i in range(100)]
        wait_rows(srv, user, 0)
    finally:
        c.close()


def test_unregister_removes_offline_messages(server):
    user, pw = new_user(server, 'unreg')
    a = sender(server)
    try:
        for i in range(2):
            send_chat(a, '%s@%s' % (user, HOST), unique('lost-%d-' % i))
        sync(a)
        wait_rows(server, user, 2)
    finally:
        a.close()
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert server.db_rows('offline_messages', user) == 0
    # a new account of the same name starts with nothing
    server.register(user, HOST, pw)
    b = come_online(server, user, pw)
    try:
        sync(b)
        no_message(b, 1.0)
    finally:
        b.close()
