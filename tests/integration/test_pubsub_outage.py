"""The database goes away while users publish: a publish that cannot be
stored is refused with a temporary error (type wait), is not announced to
the subscribers and is not served afterwards; what was acknowledged
before is still there after the recovery and after a restart; an account
whose PEP nodes cannot be read meanwhile gets a temporary error too, and
works once the database is back.  Needs PARLEY_TEST_STORAGE=pgsql
(run-pgsql.sh)."""
import os
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, q, stanza_error, tostr, unique

pytestmark = pytest.mark.skipif(parleytest.storage_kind() != 'pgsql',
                                reason='needs PARLEY_TEST_STORAGE=pgsql (run-pgsql.sh)')

NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_EVENT = NS_PUBSUB + '#event'
SERVICE = 'pubsub.' + HOST
NS_ENTRY = 'urn:example:parley-test'


def pg(cmd):
    subprocess.run(['bash', str(parleytest.srcdir() / 'tests' / 'db' / 'pgsql.sh'), cmd,
                    os.environ['PARLEY_TEST_PGSQL_DIR']],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def server(tmp_path_factory):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('pubsub-outage'))
    srv.start()
    srv.create_users()
    yield srv
    srv.finish()


def ps(c, typ, body, to=SERVICE):
    return c.iq(typ, "<pubsub xmlns='%s'>%s</pubsub>" % (NS_PUBSUB, body), to=to)


def publish(c, node, item_id, to=SERVICE):
    return ps(c, 'set', "<publish node='%s'><item id='%s'><entry xmlns='%s'>%s</entry></item></publish>"
              % (node, item_id, NS_ENTRY, item_id), to=to)


def item_ids(c, node, to=SERVICE):
    el = ps(c, 'get', "<items node='%s'/>" % node, to=to)
    assert el.get('type') == 'result', tostr(el)
    return sorted(i.get('id') for i in el.iter(q(NS_PUBSUB, 'item')))


def error_type(el):
    err = el.find(q(NS_CLIENT, 'error'))
    return err.get('type') if err is not None else None


def is_event(item_id):
    def pred(e):
        return (e.tag == q(NS_CLIENT, 'message') and
                any(i.get('id') == item_id for i in e.iter(q(NS_EVENT, 'item'))))
    return pred


def no_event(c, item_id, wait=1.0):
    try:
        e = c.wait_for(is_event(item_id), timeout=wait, what='a notification')
    except Exception:
        return
    raise AssertionError('notified of an item that was refused: %s' % tostr(e))


def test_publish_during_outage(server):
    srv = server
    alice = RawClient(srv.port, timeout=20)
    alice.login('alice', srv.password('alice'), resource='outage')
    bob = RawClient(srv.port, timeout=20)
    bob.login('bob', srv.password('bob'), resource='outage')
    node = unique('outage')
    el = ps(alice, 'set', "<create node='%s'/>" % node)
    assert el.get('type') == 'result', tostr(el)
    el = ps(bob, 'set', "<subscribe node='%s' jid='bob@%s/outage'/>" % (node, HOST))
    assert el.get('type') == 'result', tostr(el)
    el = publish(alice, node, 'before')
    assert el.get('type') == 'result', tostr(el)
    bob.wait_for(is_event('before'), what='the notification of the item before')

    pg('halt')
    halted = True
    try:
        t0 = time.monotonic()
        el = publish(alice, node, 'during')
        assert el.get('type') == 'error', tostr(el)
        assert stanza_error(el) == 'resource-constraint' and error_type(el) == 'wait', tostr(el)
        assert time.monotonic() - t0 < 15
        no_event(bob, 'during')
        # what is in memory is still served, without the refused item
        assert item_ids(bob, node) == ['before']
        # an account whose PEP nodes were never read: a temporary error
        el = publish(bob, 'urn:example:mood', 'm1', to='bob@' + HOST)
        assert el.get('type') == 'error' and error_type(el) == 'wait', tostr(el)
        assert srv.running()
    finally:
        if halted:
            pg('resume')

    deadline = time.monotonic() + 60
    while True:
        el = publish(alice, node, 'after')
        if el.get('type') == 'result':
            break
        assert time.monotonic() < deadline, 'no recovery: %s' % tostr(el)
        time.sleep(0.5)
    bob.wait_for(is_event('after'), what='the notification of the item after')
    el = publish(bob, 'urn:example:mood', 'm1', to='bob@' + HOST)
    assert el.get('type') == 'result', tostr(el)
    assert item_ids(bob, node) == ['after', 'before']
    alice.close()
    bob.close()
    assert 'pubsub' in srv.log()

    srv.stop()
    srv.start()
    bob = RawClient(srv.port, timeout=20)
    bob.login('bob', srv.password('bob'), resource='again')
    assert item_ids(bob, node) == ['after', 'before']
    assert item_ids(bob, 'urn:example:mood', to='bob@' + HOST) == ['m1']
    bob.close()
