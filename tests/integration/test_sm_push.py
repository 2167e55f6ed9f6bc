"""Stream management and push (XEP-0357): a message queued for a session
that waits to be resumed is unseen, so the user's device gets a push;
the message itself comes when the session is resumed.  An inactive
session (client state indication) gets one push, not two, and is active
once resumed: what it reads then is not pushed."""
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


class Detached:
    """A fresh user's phone with push and resumable stream management,
    whose connection is then killed; carol watches its pushes, bob sends
    it messages."""

    def __init__(self, srv, inactive=False):
        self.user = fresh_user(srv, 'smpush')
        self.watcher = connect(srv, 'carol')
        self.bob = connect(srv, 'bob')
        self.node = app_node(self.watcher)
        self.phone = SMClient(srv)
        self.enabled = self.phone.sm_login(self.user, resource=unique('phone-'))
        ok(enable(self.phone, node=self.node), 'push enable')
        if inactive:
            self.phone.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        self.phone.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        self.phone.ack()
        self.phone.kill()
        deadline = time.monotonic() + 10
        while not find_lines('connection of %s lost' % self.phone.jid, srv.log()):
            assert time.monotonic() < deadline, 'the server did not see the drop'
            time.sleep(0.1)

    def close(self):
        self.watcher.close()
        self.bob.close()


def test_push_for_a_message_queued_while_detached(server):
    d = Detached(server)
    try:
        send_to(d.bob, d.user, 'while you were away')
        f = summary(take(d.watcher, is_push(d.node), 10, 'push notification'))
        assert f['message-count'] == '1', f
        assert f['last-message-sender'] == d.bob.jid, f
        # and the message itself comes with the resumed session
        with SMClient(server) as again:
            again.auth(d.user)
            again.send("<resume xmlns='%s' previd='%s' h='%d'/>"
                       % (NS_SM, d.enabled.get('id'), d.phone.h))
            el = again.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
            assert el.tag == sm_tag('resumed'), tostr(el)
            m = again.wait_message('while you were away')
            assert bodies([m]) == ['while you were away']
    finally:
        d.close()


def test_one_push_for_an_inactive_detached_session(server):
    """Client state indication already reports a message written to an
    inactive session: a detached one that is inactive gets one push."""
    d = Detached(server, inactive=True)
    try:
        send_to(d.bob, d.user, 'one push please')
        f = summary(take(d.watcher, is_push(d.node), 10, 'push notification'))
        assert f['message-count'] == '1', f
        nothing(d.watcher, is_push(d.node), 1.5, 'second push for the same message')
    finally:
        d.close()


def test_only_the_device_that_does_not_see_it_is_pushed(server):
    """Two devices of one user registered with their own nodes: a desktop
    that is online and active, and a phone whose session waits to be
    resumed.  A message to the bare JID reaches both sessions; the phone's
    app server gets a push, the desktop's does not.  Each registration
    names the resource of the session that enabled it."""
    d = Detached(server)
    desktop = connect(server, d.user, resource=unique('desktop-'), password='fresh-secret')
    desk_node = app_node(d.watcher)
    try:
        ok(enable(desktop, node=desk_node), 'desktop push enable')
        stored = ok(desktop.iq('get', "<query xmlns='jabber:iq:private'><devices xmlns='urn:parley:push:0'/>"
                               "</query>"))
        by_node = {e.get('node'): e.get('resource')
                   for e in stored.iter('{urn:parley:push:0}device')}
        assert by_node == {d.node: d.phone.jid.split('/', 1)[1], desk_node: desktop.jid.split('/', 1)[1]}, \
            tostr(stored)
        send_to(d.bob, d.user, 'to every device')
        desktop.wait_message('to every device', timeout=10)
        f = summary(take(d.watcher, is_push(d.node), 10, 'push for the detached phone'))
        assert f['message-count'] == '1', f
        nothing(d.watcher, is_push(desk_node), 1.5, 'push for the active desktop')
        # The desktop goes inactive (client state indication): it does not
        # see what comes now, and is pushed too.
        desktop.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        desktop.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        send_to(d.bob, d.user, 'nobody looks')
        f = summary(take(d.watcher, is_push(desk_node), 10, 'push for the inactive desktop'))
        assert f['message-count'] == '1', f
        f = summary(take(d.watcher, is_push(d.node), 10, 'second push for the phone'))
        assert f['message-count'] == '2', f
    finally:
        desktop.close()
        d.close()


def test_a_resumed_session_starts_its_count_again(server):
    """A device that resumed its session has seen what it was pushed
    about: when it drops again, the next push counts from one, even though
    no message came while it was back."""
    d = Detached(server)
    try:
        send_to(d.bob, d.user, 'before the resume')
        f = summary(take(d.watcher, is_push(d.node), 10, 'first push'))
        assert f['message-count'] == '1', f
        again = SMClient(server)
        again.auth(d.user)
        again.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, d.enabled.get('id'), d.phone.h))
        el = again.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
        assert el.tag == sm_tag('resumed'), tostr(el)
        again.counting = True
        again.h = d.phone.h
        again.wait_message('before the resume')
        again.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        again.ack()
        again.kill()
        deadline = time.monotonic() + 10
        while len(find_lines('connection of %s lost' % d.phone.jid, server.log())) < 2:
            assert time.monotonic() < deadline, 'the server did not see the second drop'
            time.sleep(0.1)
        send_to(d.bob, d.user, 'after the resume')
        f = summary(take(d.watcher, is_push(d.node), 10, 'push after the second drop'))
        assert f['message-count'] == '1', f
        assert f['last-message-sender'] == d.bob.jid, f
    finally:
        d.close()


def test_a_resumed_inactive_session_is_not_pushed(server):
    """A stream begins active (XEP-0352), a resumed one too: a message the
    resumed session reads wakes nobody.  When the client says <inactive/>
    again, the next push is for what comes then, counted from one."""
    d = Detached(server, inactive=True)
    again = SMClient(server)
    try:
        again.auth(d.user)
        again.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, d.enabled.get('id'), d.phone.h))
        el = again.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
        assert el.tag == sm_tag('resumed'), tostr(el)
        send_to(d.watcher, d.user, 'read on the resumed stream')
        again.wait_message('read on the resumed stream')
        again.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        again.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        send_to(d.bob, d.user, 'while inactive again')
        f = summary(take(d.watcher, is_push(d.node), 10, 'push notification'))
        assert (f['message-count'], f['last-message-sender']) == ('1', d.bob.jid), f
    finally:
        again.close()
        d.close()
