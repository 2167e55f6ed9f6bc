"""Stream management and push (XEP-0357): a message queued for a session
that waits to be resumed is unseen, so the user's device gets a push;
the message itself comes when the session is resumed.  An inactive
session (client state indication) gets one push, not two, and is active
once resumed: what it reads then is not pushed.  A session that expires
stores what it never acknowledged offline: the devices already pushed
for those messages do not count them again, the others do."""
import re
import time

import pytest

from parleytest import HOST, find_lines, tostr, unique
from test_muc import connect, fresh_user, nothing, take
from test_push import app_node, enable, is_push, ok, push_server, send_to, summary
from test_sasl2_sm import wait_log
from test_sm import NS_SM, SMClient, sm_tag, bodies, session_ended


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = push_server(tmp_path_factory, 'sm-push', min_interval=0)
    yield srv
    srv.finish()


class Detached:
    """A fresh user's phone with push and resumable stream management,
    whose connection is then killed; carol watches its pushes, bob sends
    it messages."""

    def __init__(self, srv, inactive=False, max_=None):
        self.user = fresh_user(srv, 'smpush')
        self.watcher = connect(srv, 'carol')
        self.bob = connect(srv, 'bob')
        self.node = app_node(self.watcher)
        self.phone = SMClient(srv)
        self.enabled = self.phone.sm_login(self.user, resource=unique('phone-'), max_=max_)
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

    def push(self, node, what):
        """The next push to node: (message-count, last-message-sender)."""
        f = summary(take(self.watcher, is_push(node), 10, what))
        return f['message-count'], f['last-message-sender']

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


@pytest.mark.parametrize('inactive', [False, True])
def test_expiry_does_not_count_pushed_messages_again(server, inactive):
    """Two messages are pushed while the phone's session waits (counts 1
    and 2; for a session that said <inactive/> before, client state
    indication pushed them).  The session expires and stores them offline:
    they are the same two messages, the device is not woken again and its
    count stays 2; the next message counts 3."""
    d = Detached(server, inactive=inactive, max_=2)
    try:
        send_to(d.bob, d.user, 'one')
        assert d.push(d.node, 'first push') == ('1', d.bob.jid)
        send_to(d.bob, d.user, 'two')
        assert d.push(d.node, 'second push') == ('2', d.bob.jid)
        line = session_ended(server, d.phone.jid)
        assert ': 2 messages to offline storage' in line, line
        send_to(d.watcher, d.user, 'three')
        assert d.push(d.node, 'push for the third message') == ('3', d.watcher.jid)
    finally:
        d.close()


def test_expiry_counts_for_the_devices_not_pushed_yet(server):
    """The user's tablet registered for push and went offline; a message
    to the bare JID goes to the phone's waiting session alone, and wakes
    the phone only.  When that session expires, the message is stored
    offline, where the tablet will read it: the tablet is woken now (count
    1), the phone is not woken again."""
    d = Detached(server, max_=2)
    tablet = connect(server, d.user, resource=unique('tablet-'), password='fresh-secret')
    tab_node = app_node(d.watcher)
    try:
        ok(enable(tablet, node=tab_node), 'tablet push enable')
        tablet.close()
        wait_log(server, 'session %s closed' % tablet.jid, 'the tablet did not leave')
        send_to(d.bob, d.user, 'for the phone')
        assert d.push(d.node, 'push for the phone') == ('1', d.bob.jid)
        session_ended(server, d.phone.jid)
        assert d.push(tab_node, 'push for the tablet') == ('1', d.bob.jid)
        send_to(d.watcher, d.user, 'later')
        assert d.push(d.node, 'next push for the phone') == ('2', d.watcher.jid)
        assert d.push(tab_node, 'next push for the tablet') == ('2', d.watcher.jid)
    finally:
        d.close()


def test_a_message_two_waiting_sessions_got_is_counted_once_each(server):
    """The phone and the tablet both wait to be resumed; a message to the
    bare JID goes to both and wakes both.  The sessions expire: the first
    leaves the message to the other, which stores it offline; neither
    device counts it again."""
    d = Detached(server, max_=2)
    tablet = SMClient(server)
    tab_node = app_node(d.watcher)
    try:
        tablet.sm_login(d.user, resource=unique('tablet-'), max_=2)
        ok(enable(tablet, node=tab_node), 'tablet push enable')
        tablet.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
        tablet.ack()
        tablet.kill()
        wait_log(server, 'connection of %s lost' % tablet.jid, 'the server did not see the drop')
        send_to(d.bob, d.user, 'for both')
        assert d.push(d.node, 'push for the phone') == ('1', d.bob.jid)
        assert d.push(tab_node, 'push for the tablet') == ('1', d.bob.jid)
        lines = [session_ended(server, d.phone.jid), session_ended(server, tablet.jid)]
        settled = sorted(re.search(r': (\d+) messages to offline storage, (\d+) kept', l).groups()
                         for l in lines)
        assert settled == [('0', '1'), ('1', '0')], lines
        send_to(d.watcher, d.user, 'later')
        assert d.push(d.node, 'next push for the phone') == ('2', d.watcher.jid)
        assert d.push(tab_node, 'next push for the tablet') == ('2', d.watcher.jid)
    finally:
        d.close()


def test_a_resumed_session_counts_anew_what_it_leaves_stored(server):
    """A message pushed while the phone's session waited is sent again
    when the session is resumed, and the device's count starts again.  The
    connection drops once more before the client acknowledged it and the
    session expires: stored offline, the message is counted anew (1), as
    a message the device has not seen since it was back."""
    d = Detached(server, max_=2)
    again = SMClient(server)
    try:
        send_to(d.bob, d.user, 'sent again')
        assert d.push(d.node, 'push while detached') == ('1', d.bob.jid)
        again.auth(d.user)
        again.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, d.enabled.get('id'), d.phone.h))
        el = again.wait_for(lambda e: e.tag in (sm_tag('resumed'), sm_tag('failed')), what='<resumed/>')
        assert el.tag == sm_tag('resumed'), tostr(el)
        again.wait_message('sent again')
        again.kill()
        line = session_ended(server, d.phone.jid)
        assert ': 1 messages to offline storage' in line, line
        send_to(d.watcher, d.user, 'later')
        assert d.push(d.node, 'push for the stored message') == ('1', d.bob.jid)
        assert d.push(d.node, 'push for the next message') == ('2', d.watcher.jid)
    finally:
        d.close()
