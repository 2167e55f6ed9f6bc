"""The database of one host goes away in the middle of traffic and comes
back: parleyd stays up, the host on SQLite keeps working, clients of the
PostgreSQL host get errors (never silence) while it is down, the outage and
the recovery are logged, and everything acknowledged before it is still
there afterwards.  Needs PARLEY_TEST_STORAGE=pgsql (run-pgsql.sh)."""
import os
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, NS_SASL, OTHER, RawClient, q, stanza_error, tostr, unique

pytestmark = pytest.mark.skipif(parleytest.storage_kind() != 'pgsql',
                                reason='needs PARLEY_TEST_STORAGE=pgsql (run-pgsql.sh)')

NS_ROSTER = 'jabber:iq:roster'
NS_VCARD = 'vcard-temp'


def pg(cmd):
    """tests/db/pgsql.sh halt|resume on the server of this run."""
    subprocess.run(['bash', str(parleytest.srcdir() / 'tests' / 'db' / 'pgsql.sh'), cmd,
                    os.environ['PARLEY_TEST_PGSQL_DIR']],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def outage_server(tmp_path_factory):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-outage'))
    srv.start()
    srv.create_users()
    srv.register('frank', OTHER, 'frank-secret')
    yield srv
    srv.finish()


def send_chat(c, to, body):
    c.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
           % (to, unique('m'), body))


def sync(c):
    el = c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=c.host)
    assert el.get('type') == 'result', tostr(el)


def wait_rows(srv, table, user, n, host=HOST, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.db_rows(table, user, host=host) == n:
            return
        time.sleep(0.05)
    raise AssertionError('%s@%s has %d rows in %s, expected %d'
                         % (user, host, srv.db_rows(table, user, host=host), table, n))


def error_type(el):
    err = el.find(q(NS_CLIENT, 'error'))
    return err.get('type') if err is not None else None


def test_outage_and_recovery(outage_server):
    srv = outage_server
    a = RawClient(srv.port, timeout=20)
    a.login('alice', srv.password('alice'), resource='outage')
    d = RawClient(srv.port, host=OTHER, timeout=20)
    d.login('dave', srv.password('dave', OTHER), resource='outage')
    c = RawClient(srv.port, timeout=20)
    c.login('carol', srv.password('carol'), resource='outage')

    # Acknowledged before the outage: an offline message and a vCard.
    before = unique('before-')
    send_chat(a, 'bob@%s' % HOST, before)
    sync(a)
    wait_rows(srv, 'offline_messages', 'bob', 1)
    fn = unique('Alice ')
    el = a.iq('set', "<vCard xmlns='%s'><FN>%s</FN></vCard>" % (NS_VCARD, fn))
    assert el.get('type') == 'result', tostr(el)

    pg('halt')
    halted = True
    try:
        # A message for an offline user cannot be stored: it comes back to
        # its sender with a temporary error, it is not dropped.
        during = unique('during-')
        t0 = time.monotonic()
        send_chat(a, 'bob@%s' % HOST, during)
        err = a.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error',
                         what='the bounce of the message')
        assert err.findtext(q(NS_CLIENT, 'body')) == during, tostr(err)
        assert stanza_error(err) == 'resource-constraint', tostr(err)
        assert error_type(err) == 'wait', tostr(err)

        # A roster read gets an error of type wait, quickly (no hanging).
        el = a.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
        assert el.get('type') == 'error', tostr(el)
        assert error_type(el) == 'wait', tostr(el)
        el = a.iq('set', "<vCard xmlns='%s'><FN>lost</FN></vCard>" % NS_VCARD)
        assert el.get('type') == 'error' and error_type(el) == 'wait', tostr(el)
        assert time.monotonic() - t0 < 15

        # Users online on that host still talk to each other.
        live = unique('live-')
        send_chat(a, 'carol@%s/outage' % HOST, live)
        got = c.wait_message(live)
        assert got.get('type') == 'chat', tostr(got)

        # A new login on that host: a temporary failure, not "not-authorized".
        b = RawClient(srv.port, timeout=20)
        try:
            b.open()
            b.starttls()
            r = b.auth_plain('bob', srv.password('bob'))
            assert r.tag == q(NS_SASL, 'failure'), tostr(r)
            assert r.find(q(NS_SASL, 'temporary-auth-failure')) is not None, tostr(r)
        finally:
            b.close()

        # The host on SQLite does not notice: logins, offline storage, vCards.
        d2 = RawClient(srv.port, host=OTHER, timeout=20)
        try:
            d2.login('dave', srv.password('dave', OTHER), resource='second')
        finally:
            d2.close()
        other_body = unique('other-')
        send_chat(d, 'frank@%s' % OTHER, other_body)
        sync(d)
        wait_rows(srv, 'offline_messages', 'frank', 1, host=OTHER)
        el = d.iq('set', "<vCard xmlns='%s'><FN>Dave</FN></vCard>" % NS_VCARD)
        assert el.get('type') == 'result', tostr(el)
        assert srv.running()
    finally:
        if halted:
            pg('resume')

    # Recovery: within the backoff (at most 30 s) requests work again.
    deadline = time.monotonic() + 60
    while True:
        el = a.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
        if el.get('type') == 'result':
            break
        assert time.monotonic() < deadline, 'no recovery: %s' % tostr(el)
        time.sleep(0.5)

    # Everything acknowledged before is there; the bounced message is not.
    el = a.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to='alice@%s' % HOST)
    assert el.get('type') == 'result', tostr(el)
    assert el.findtext('{%s}vCard/{%s}FN' % (NS_VCARD, NS_VCARD)) == fn, tostr(el)
    b = RawClient(srv.port, timeout=20)
    try:
        b.login('bob', srv.password('bob'), resource='back', presence=False)
        b.send('<presence/>')
        got = b.wait_message(timeout=20)
        assert got.findtext(q(NS_CLIENT, 'body')) == before, tostr(got)
    finally:
        b.close()
    wait_rows(srv, 'offline_messages', 'bob', 0)
    a.close()
    c.close()
    d.close()

    log = srv.log()
    assert 'cannot connect' in log and 'degraded' in log, log[-3000:]
    assert 'connected again' in log, log[-3000:]
    assert 'failed at once' in log or 'temporary failure' in log, log[-3000:]
    assert os.environ['PARLEY_TEST_PGSQL_PASSWORD'] not in log
