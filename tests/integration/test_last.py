"""Last activity (XEP-0012, jabber:iq:last): the server's uptime, 0 for an
online contact, the seconds since logout (with the status of the last
unavailable presence) for an offline one, item-not-found for a user never
seen, forbidden for a requester who is not subscribed, and the record dies
with the account."""
import time

from parleytest import HOST, NS_DISCO_INFO, RawClient, q, stanza_error, tostr, unique
from test_presence import bare, make_mutual, new_user, online

NS_LAST = 'jabber:iq:last'


# ---- helpers ----------------------------------------------------------------

def last(c, to):
    return c.iq('get', "<query xmlns='%s'/>" % NS_LAST, to=to)


def seconds_of(el):
    assert el.get('type') == 'result', tostr(el)
    qe = el.find(q(NS_LAST, 'query'))
    assert qe is not None, tostr(el)
    return int(qe.get('seconds')), (qe.text or '')


def last_row(srv, user):
    rows = srv.db_query('SELECT seconds, status FROM last_activity WHERE server_host = ? AND '
                        'username = ?', (HOST, user))
    return tuple('' if v is None else v for v in rows[0]) if rows else None


def wait_row(srv, user, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = last_row(srv, user)
        if row is not None:
            return row
        time.sleep(0.05)
    raise AssertionError('no last_activity row for %s' % user)


def plain(server, user):
    """Logged in and available, without a roster request."""
    c = RawClient(server.port)
    c.login(user, server.password(user), resource=unique('r'))
    return c


# ---- tests ------------------------------------------------------------------

def test_advertised(server):
    u = new_user(server, 'ld')
    c = plain(server, u)
    try:
        for to in (HOST, bare(u)):
            el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
            features = [f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))]
            assert NS_LAST in features, (to, tostr(el))
    finally:
        c.close()


def test_server_uptime(server):
    u = new_user(server, 'lu')
    c = plain(server, u)
    try:
        first, _ = seconds_of(last(c, HOST))
        time.sleep(1.2)
        second, _ = seconds_of(last(c, HOST))
        assert second > 0 and second >= first + 1, (first, second)
        # a set is refused
        el = c.iq('set', "<query xmlns='%s'/>" % NS_LAST, to=HOST)
        assert stanza_error(el) == 'bad-request', tostr(el)
    finally:
        c.close()


def test_online_contact_is_zero(server):
    au, bu = new_user(server, 'la'), new_user(server, 'lb')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        assert seconds_of(last(a, bare(bu))) == (0, '')
        assert seconds_of(last(b, bare(au))) == (0, '')
    finally:
        a.close()
        b.close()


def test_offline_contact_after_logout(server):
    au, bu = new_user(server, 'la'), new_user(server, 'lb')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        # b has two sessions; closing one of them records nothing
        b2 = plain(server, bu)
        b2.send('<presence type="unavailable"><status>other one</status></presence>')
        b2.close()
        time.sleep(0.3)
        assert last_row(server, bu) is None
        assert seconds_of(last(a, bare(bu))) == (0, '')
        status = unique('Gone to Mantua ')
        b.send("<presence type='unavailable'><status>%s</status></presence>" % status)
        b.close()
        row = wait_row(server, bu)
        assert row[1] == status, row
        time.sleep(1.1)
        secs, text = seconds_of(last(a, bare(bu)))
        assert secs >= 1, secs
        assert secs < 60, secs
        assert text == status
        # the user asks about themselves
        b3 = plain(server, bu)
        try:
            assert seconds_of(last(b3, bare(bu))) == (0, '')
        finally:
            b3.close()
    finally:
        a.close()
        b.close()


def test_logout_without_status(server):
    au, bu = new_user(server, 'la'), new_user(server, 'lb')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        b.close()   # the connection ends without unavailable presence
        wait_row(server, bu)
        secs, text = seconds_of(last(a, bare(bu)))
        assert secs >= 0 and text == '', (secs, text)
    finally:
        a.close()
        b.close()


def test_never_seen_is_item_not_found(server):
    au, bu = new_user(server, 'ln'), new_user(server, 'lnb')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        b.close()
        wait_row(server, bu)
        # the record of b is removed from outside: as far as the server
        # knows, b was never seen
        server.db_query('DELETE FROM last_activity WHERE server_host = ? AND username = ?',
                        (HOST, bu))
        el = last(a, bare(bu))
        assert stanza_error(el) == 'item-not-found', tostr(el)
    finally:
        a.close()
        b.close()


def test_unsubscribed_requester_forbidden(server):
    au, bu, cu = new_user(server, 'la'), new_user(server, 'lb'), new_user(server, 'lc')
    a, b = online(server, au), online(server, bu)
    c = plain(server, cu)
    try:
        make_mutual(a, au, b, bu)
        # c has no subscription to b: forbidden, online or not
        el = last(c, bare(bu))
        assert stanza_error(el) == 'forbidden', tostr(el)
        b.close()
        wait_row(server, bu)
        el = last(c, bare(bu))
        assert stanza_error(el) == 'forbidden', tostr(el)
        assert 'seconds' not in tostr(el)
        # a pending request does not count either
        c.send("<presence to='%s' type='subscribe'/>" % bare(bu))
        time.sleep(0.3)
        el = last(c, bare(bu))
        assert stanza_error(el) == 'forbidden', tostr(el)
        # a subscriber still may
        seconds_of(last(a, bare(bu)))
    finally:
        a.close()
        b.close()
        c.close()


def test_unregister_removes_last_activity(server):
    au, bu = new_user(server, 'la'), new_user(server, 'lb')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        a.close()
        wait_row(server, au)
        pw = server.password(au)
        # removed while a session of the user is open: its closing (the kick)
        # must not write the row again
        a2 = plain(server, au)
        try:
            r = server.ctl('unregister', au, HOST)
            assert r.returncode == 0, (r.returncode, r.stderr)
            a2.wait_closed(timeout=10)
        finally:
            a2.close()
        time.sleep(0.5)
        assert last_row(server, au) is None
        # the new account of the same name has no record until it logs out
        server.register(au, HOST, pw)
        a3 = plain(server, au)
        try:
            seconds_of(last(a3, HOST))
            assert last_row(server, au) is None
            assert seconds_of(last(a3, bare(au))) == (0, '')
        finally:
            a3.close()
        wait_row(server, au)
    finally:
        a.close()
        b.close()
