"""Stream management and push (XEP-0357): a message queued for a session
that waits to be resumed is unseen, so the user's device gets a push;
the message itself comes when the session is resumed."""
import time

import pytest

from parleytest import HOST, find_lines, tostr, unique
from test_muc import connect, fresh_user, nothing, take
from test_push import app_node, enable, is_push, ok, push_server, send_to, summary
from test_sm import NS_SM, SMClient, sm_tag, bodies


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = push_server(tmp_path_factory, 'sm-push', min_interval=0)
    yield srv
    srv.finish()


def test_push_for_a_message_queued_while_detached(server):
    user = fresh_user(server, 'smpush')
    watcher = connect(server, 'carol')
    bob = connect(server, 'bob')
    phone = SMClient(server)
    try:
        node = app_node(watcher)
        enabled = phone.sm_login(user, resource=unique('phone-'))
        ok(enable(phone, node=node), 'push enable')
        phone.ack()
        phone.kill()
        deadline = time.monotonic() + 10
        while not find_lines('connection of %s lost' % phone.jid, server.log()):
            assert time.monotonic() < deadline, 'the server did not see the drop'
            time.sleep(0.1)
        send_to(bob, user, 'while you were away')
        f = summary(take(watcher, is_push(node), 10, 'push notification'))
        assert f['message-count'] == '1', f
        assert f['last-message-sender'] == bob.jid, f
        # and the message itself comes with the resumed session
        with SMClient(server) as again:
            again.auth(user)
            again.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, enabled.get('id'), phone.h))
            el = again.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
            assert el.tag == sm_tag('resumed'), tostr(el)
            again.counting = True
            m = again.wait_message('while you were away')
            assert bodies([m]) == ['while you were away']
    finally:
        for c in (watcher, bob):
            c.close()


def test_one_push_for_an_inactive_detached_session(server):
    """Client state indication already reports a message written to an
    inactive session: a detached one that is inactive gets one push, not
    two."""
    user = fresh_user(server, 'smcsi')
    watcher = connect(server, 'carol')
    bob = connect(server, 'bob')
    phone = SMClient(server)
    try:
        node = app_node(watcher)
        phone.sm_login(user, resource=unique('phone-'))
        ok(enable(phone, node=node), 'push enable')
        phone.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        phone.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        phone.kill()
        deadline = time.monotonic() + 10
        while not find_lines('connection of %s lost' % phone.jid, server.log()):
            assert time.monotonic() < deadline, 'the server did not see the drop'
            time.sleep(0.1)
        send_to(bob, user, 'one push please')
        f = summary(take(watcher, is_push(node), 10, 'push notification'))
        assert f['message-count'] == '1', f
        nothing(watcher, is_push(node), 1.5, 'second push for the same message')
    finally:
        for c in (watcher, bob):
            c.close()
