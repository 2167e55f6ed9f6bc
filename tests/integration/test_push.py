"""Push notifications (XEP-0357, urn:xmpp:push:0): registration (enable,
disable, bad input, who may), the feature on the account, a push when a
message is stored for an offline user (the summary form, with the body
only when include_body allows it), none while the user is online, none
after disable, the rate limit per device, a device back through client
state indication (<active/>: its count starts again, an owed push is not
sent), persistence across a restart, and what an app server's error does
(a permanent one removes the device, others keep it).

The app server is the local pubsub service (pubsub.test.local): the test
makes a node there whose publish_model is open, a watcher account
subscribes to it and receives the published notifications as events."""
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, q, stanza_error, tostr, unique
from test_muc import NS_XDATA, connect, disco_info, features, fresh_user, iq, nothing, sync, take, values
from test_pubsub import NS_PUBLISH_OPTIONS, SERVICE, create, event_of, form, subscribed

NS_PUSH = 'urn:xmpp:push:0'
NS_PUSH_STORE = 'urn:parley:push:0'
NS_PRIVATE = 'jabber:iq:private'
NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
SUMMARY = 'urn:xmpp:push:summary'


def push_server(tmp_path_factory, name, **options):
    """A started parleyd whose HOST runs push with options (a dict)."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp(name))
    text = srv.config.read_text()
    opts = ', '.join('%s: %s' % kv for kv in options.items())
    marker = '      register: {'
    assert marker in text
    srv.config.write_text(text.replace(marker, '      push: { %s }\n%s' % (opts, marker), 1))
    srv.start_with_users()
    return srv


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = push_server(tmp_path_factory, 'push', min_interval=0)
    yield srv
    srv.finish()


# ---- helpers ------------------------------------------------------------------------

def enable(c, jid=SERVICE, node=None, options=None):
    n = " node='%s'" % node if node is not None else ''
    j = " jid='%s'" % jid if jid is not None else ''
    x = form(options, NS_PUBLISH_OPTIONS) if options is not None else ''
    return iq(c, 'set', c.jid.split('/')[0], "<enable xmlns='%s'%s%s>%s</enable>" % (NS_PUSH, j, n, x))


def disable(c, jid=SERVICE, node=None):
    n = " node='%s'" % node if node is not None else ''
    return iq(c, 'set', c.jid.split('/')[0], "<disable xmlns='%s' jid='%s'%s/>" % (NS_PUSH, jid, n))


def ok(r, what='request'):
    assert r.get('type') == 'result', '%s failed: %s' % (what, tostr(r))
    return r


def app_node(owner, publish_model='open'):
    """A node on the pubsub service that owner (a RawClient) made and
    subscribed to: the app server's node of one device."""
    node = create(owner, unique('push-'), {'pubsub#publish_model': publish_model,
                                           'pubsub#deliver_payloads': '1'})
    subscribed(owner, node)
    return node


def is_push(node):
    def pred(e):
        ev = event_of(e)
        if ev is None:
            return False
        items = ev.find(q(NS_PUBSUB + '#event', 'items'))
        return items is not None and items.get('node') == node
    return pred


def summary(e):
    """The fields of the notification's summary form: var -> value."""
    ev = event_of(e)
    n = ev.find('.//' + q(NS_PUSH, 'notification'))
    assert n is not None, 'no <notification/> in %s' % tostr(e)
    x = n.find(q(NS_XDATA, 'x'))
    assert x is not None and x.get('type') == 'submit', tostr(e)
    return {f.get('var'): (values(f) or [''])[0] for f in x.findall(q(NS_XDATA, 'field'))}


def stored_devices(c):
    """The registrations as kept in the user's private XML storage."""
    r = ok(iq(c, 'get', c.jid.split('/')[0],
              "<query xmlns='%s'><devices xmlns='%s'/></query>" % (NS_PRIVATE, NS_PUSH_STORE)))
    devs = r.find('.//' + q(NS_PUSH_STORE, 'devices'))
    return [(d.get('jid'), d.get('node')) for d in devs.findall(q(NS_PUSH_STORE, 'device'))] if devs is not None else []


def quiet(srv, user, resource=None):
    """A session of user that sends no presence: messages to the bare JID
    are still stored offline."""
    c = parleytest.RawClient(srv.port)
    c.login(user, 'fresh-secret', resource=resource or unique('quiet-'), presence=False)
    return c


def send_to(sender, user, body):
    sender.send("<message to='%s@%s' type='chat' id='%s'><body>%s</body></message>"
                % (user, HOST, unique('m'), body))
    sync(sender)


class Device:
    """A fresh account with one registered device, a watcher (carol) that
    receives its pushes, and bob to send it messages."""

    def __init__(self, srv, publish_model='open', options=None):
        self.srv = srv
        self.user = fresh_user(srv, 'push')
        self.watcher = connect(srv, 'carol')
        self.node = app_node(self.watcher, publish_model)
        self.resource = unique('phone-')
        self.phone = connect(srv, self.user, resource=self.resource, password='fresh-secret')
        ok(enable(self.phone, node=self.node, options=options), 'enable')
        self.bob = connect(srv, 'bob')

    def offline(self):
        self.phone.close()
        time.sleep(0.3)

    def close(self):
        for c in (self.watcher, self.phone, self.bob):
            c.close()


# ---- registration -------------------------------------------------------------------

def test_feature_on_the_account(server):
    c = connect(server, 'alice')
    try:
        info = ok(disco_info(c, 'alice@' + HOST))
        assert NS_PUSH in features(info), tostr(info)
        server_info = ok(disco_info(c, HOST))
        assert NS_PUSH not in features(server_info), 'push is a feature of accounts, not the server'
    finally:
        c.close()


def own_session(srv):
    """A session of a new account (nothing registered yet)."""
    return connect(srv, fresh_user(srv, 'push'), password='fresh-secret')


def test_enable_disable_stored(server):
    c = own_session(server)
    try:
        assert stored_devices(c) == []
        ok(enable(c, 'push.example.net', 'node-a'))
        ok(enable(c, 'push.example.net', 'node-b', {'secret': 'tok'}))
        ok(enable(c, 'other.example.net', 'node-a'))
        # enabling the same device again replaces it, no duplicate
        ok(enable(c, 'push.example.net', 'node-a'))
        assert sorted(stored_devices(c)) == [('other.example.net', 'node-a'), ('push.example.net', 'node-a'),
                                             ('push.example.net', 'node-b')]
        ok(disable(c, 'push.example.net', 'node-b'))
        assert sorted(stored_devices(c)) == [('other.example.net', 'node-a'), ('push.example.net', 'node-a')]
        # disable without node: every node of that app server
        ok(disable(c, 'push.example.net'))
        assert stored_devices(c) == [('other.example.net', 'node-a')]
        # disabling what is not registered is no error
        ok(disable(c, 'nowhere.example.net', 'x'))
    finally:
        c.close()


def test_bad_input(server):
    c = own_session(server)
    try:
        assert stanza_error(enable(c, jid=None, node='n')) == 'bad-request'
        assert stanza_error(enable(c, node=None)) == 'bad-request'
        assert stanza_error(enable(c, jid='bad@@jid', node='n')) == 'bad-request'
        # a form that is not publish-options
        r = iq(c, 'set', c.jid.split('/')[0],
               "<enable xmlns='%s' jid='%s' node='n'>%s</enable>"
               % (NS_PUSH, SERVICE, form({'x': 'y'}, 'urn:example:other')))
        assert stanza_error(r) == 'bad-request', tostr(r)
        r = iq(c, 'get', c.jid.split('/')[0], "<enable xmlns='%s' jid='%s' node='n'/>" % (NS_PUSH, SERVICE))
        assert stanza_error(r) == 'bad-request', tostr(r)
        # someone else's registrations
        r = iq(c, 'set', 'alice@' + HOST, "<enable xmlns='%s' jid='%s' node='n'/>" % (NS_PUSH, SERVICE))
        assert stanza_error(r) == 'forbidden', tostr(r)
        assert stored_devices(c) == []
    finally:
        c.close()


# ---- pushes -------------------------------------------------------------------------

def test_push_for_offline_message_without_body(server):
    d = Device(server)
    try:
        d.offline()
        send_to(d.bob, d.user, 'secret words')
        e = take(d.watcher, is_push(d.node), 10, 'push notification')
        f = summary(e)
        assert f['FORM_TYPE'] == SUMMARY, f
        assert f['message-count'] == '1', f
        assert f['last-message-sender'] == d.bob.jid, f
        assert 'last-message-body' not in f, 'the body is sent only when include_body allows it: %s' % f
        assert 'secret words' not in tostr(e)
        # the second one counts both
        send_to(d.bob, d.user, 'more')
        f = summary(take(d.watcher, is_push(d.node), 10, 'second push'))
        assert f['message-count'] == '2', f
    finally:
        d.close()


def test_no_push_while_online(server):
    d = Device(server)
    try:
        send_to(d.bob, d.user, 'you are here')
        d.phone.wait_message('you are here', timeout=10)
        nothing(d.watcher, is_push(d.node), 1.5, 'push for a message the user saw')
    finally:
        d.close()


def client_state(c, state):
    """c's client says it is 'active' or 'inactive' (client state
    indication); the server knows it on return."""
    c.send("<%s xmlns='urn:xmpp:csi:0'/>" % state)
    sync(c)


def test_active_again_starts_the_count_again(server):
    """A device that said <active/> saw what it was pushed about: when it
    goes inactive again, the next push counts from one."""
    d = Device(server)
    try:
        client_state(d.phone, 'inactive')
        send_to(d.bob, d.user, 'first')
        f = summary(take(d.watcher, is_push(d.node), 10, 'push while inactive'))
        assert f['message-count'] == '1', f
        d.phone.wait_message('first', timeout=10)
        client_state(d.phone, 'active')
        client_state(d.phone, 'inactive')
        send_to(d.bob, d.user, 'second')
        f = summary(take(d.watcher, is_push(d.node), 10, 'push after <active/> and <inactive/>'))
        assert f['message-count'] == '1', f
    finally:
        d.close()


def test_disable_stops_pushes(server):
    d = Device(server)
    try:
        ok(disable(d.phone, SERVICE, d.node))
        d.offline()
        send_to(d.bob, d.user, 'after disable')
        nothing(d.watcher, is_push(d.node), 1.5, 'push after disable')
    finally:
        d.close()


def test_permanent_error_removes_the_device(server):
    # publish_model publishers: the pushed account may not publish, the
    # service answers <forbidden/> (type auth)
    d = Device(server, publish_model='publishers')
    try:
        assert stored_devices(d.phone) == [(SERVICE, d.node)]
        watch = quiet(server, d.user)
        d.offline()
        send_to(d.bob, d.user, 'refused')
        deadline = time.monotonic() + 10
        while stored_devices(watch) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored_devices(watch) == [], 'a device whose app server refuses is removed'
        assert 'removed: its app server refused a push' in server.log()
        watch.close()
    finally:
        d.close()


def test_other_errors_keep_the_device(server):
    # the local service does not know the 'secret' publish option and
    # answers <conflict/> with precondition-not-met: the device stays
    d = Device(server, options={'secret': 'app-token'})
    try:
        d.offline()
        send_to(d.bob, d.user, 'with options')
        nothing(d.watcher, is_push(d.node), 1.5, 'push the service refused')
        watch = quiet(server, d.user)
        assert stored_devices(watch) == [(SERVICE, d.node)]
        watch.close()
        assert 'answered a push with conflict' in server.log()
    finally:
        d.close()


def test_remote_app_server_is_quiet(server):
    user = fresh_user(server, 'push')
    c = connect(server, user, password='fresh-secret')
    bob = connect(server, 'bob')
    try:
        ok(enable(c, 'push.example.net', 'dev1'))
        c.close()
        time.sleep(0.3)
        before = server.log().count('push.example.net (node dev1) of')
        send_to(bob, user, 'one')
        send_to(bob, user, 'two')
        time.sleep(0.5)
        assert server.log().count('push.example.net (node dev1) of') - before == 1, \
            'an unreachable app server is logged once per device'
        c = quiet(server, user)
        assert stored_devices(c) == [('push.example.net', 'dev1')]
    finally:
        c.close()
        bob.close()


# ---- options, restart ---------------------------------------------------------------

def test_include_body_and_rate_limit(tmp_path_factory):
    srv = push_server(tmp_path_factory, 'push-body', include_body='true', min_interval='3s')
    try:
        d = Device(srv)
        try:
            d.offline()
            send_to(d.bob, d.user, 'hello phone')
            f = summary(take(d.watcher, is_push(d.node), 10, 'push'))
            assert f['last-message-body'] == 'hello phone', f
            assert f['message-count'] == '1', f
            # within min_interval: counted, not pushed at once ...
            t0 = time.monotonic()
            send_to(d.bob, d.user, 'second')
            send_to(d.bob, d.user, 'third')
            nothing(d.watcher, is_push(d.node), 1.0, 'push within min_interval')
            # ... but owed: sent when the interval is over, with the count
            # and the last message
            f = summary(take(d.watcher, is_push(d.node), 10, 'owed push'))
            assert time.monotonic() - t0 >= 1.5, 'the owed push came before min_interval was over'
            assert f['message-count'] == '3', f
            assert f['last-message-body'] == 'third', f
            # another device of the user comes back before an owed push: the
            # phone has not seen the message, the push is still sent
            send_to(d.bob, d.user, 'fourth')
            other = quiet(srv, d.user)
            f = summary(take(d.watcher, is_push(d.node), 10, 'owed push while another device is back'))
            assert f['last-message-body'] == 'fourth', f
            other.close()
            # the phone itself comes back before an owed push: it is not sent
            send_to(d.bob, d.user, 'fifth')
            back = quiet(srv, d.user, resource=d.resource)
            nothing(d.watcher, is_push(d.node), 4.0, 'owed push after the device came back')
            back.close()
        finally:
            d.close()
    finally:
        srv.finish()


def test_active_again_drops_the_owed_push(tmp_path_factory):
    """A push owed under min_interval is not sent when the device said
    <active/> meanwhile (it read the messages), even if it is inactive
    again when the interval is over: the next push counts what came since."""
    srv = push_server(tmp_path_factory, 'push-active', include_body='true', min_interval='3s')
    try:
        d = Device(srv)
        try:
            client_state(d.phone, 'inactive')
            send_to(d.bob, d.user, 'one')
            f = summary(take(d.watcher, is_push(d.node), 10, 'push'))
            assert f['message-count'] == '1', f
            send_to(d.bob, d.user, 'two')  # within min_interval: owed
            d.phone.wait_message('two', timeout=10)
            client_state(d.phone, 'active')
            client_state(d.phone, 'inactive')
            send_to(d.bob, d.user, 'three')
            f = summary(take(d.watcher, is_push(d.node), 10, 'push when the interval is over'))
            assert (f['message-count'], f['last-message-body']) == ('1', 'three'), f
        finally:
            d.close()
    finally:
        srv.finish()


def test_registrations_survive_a_restart(tmp_path_factory):
    srv = push_server(tmp_path_factory, 'push-restart', min_interval=0)
    try:
        d = Device(srv)
        d.close()
        srv.stop()
        srv.start()
        watcher = connect(srv, 'carol')
        bob = connect(srv, 'bob')
        try:
            send_to(bob, d.user, 'after restart')
            f = summary(take(watcher, is_push(d.node), 10, 'push after a restart'))
            assert f['message-count'] == '1', f
        finally:
            watcher.close()
            bob.close()
    finally:
        srv.finish()


def test_bad_configuration(tmp_path_factory):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('push-bad'))
    text = srv.config.read_text()
    for bad in ('timeout: 0', 'include_body: maybe', 'max_devices: 0', 'colour: red'):
        srv.config.write_text(text.replace('      register: {', '      push: { %s }\n      register: {' % bad, 1))
        r = subprocess.run([srv.parleyd, '-t', '-c', str(srv.config)], capture_output=True, text=True,
                           cwd=str(srv.dir), env=srv.env, timeout=30)
        assert r.returncode != 0, 'push { %s } accepted' % bad
        assert 'modules.push.' in r.stdout + r.stderr, r.stdout + r.stderr
