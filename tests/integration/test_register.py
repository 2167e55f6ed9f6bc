"""In-band registration (XEP-0077): open on test.local, closed on other.local."""
import time

import parleytest
from parleytest import (HOST, NS_REGISTER, NS_REGISTER_FEATURE, NS_SASL, OTHER, RawClient, find_lines,
                        q, stanza_error, tostr, unique)


def _before_auth(server, host=HOST):
    c = RawClient(server.port, host=host)
    c.open()
    c.starttls()
    return c


def _register(c, user, password):
    return c.iq('set', "<query xmlns='%s'><username>%s</username><password>%s</password></query>"
                % (NS_REGISTER, user, password))


def _can_login(server, user, password, host=HOST):
    c = RawClient(server.port, host=host)
    try:
        c.open()
        c.starttls()
        return c.auth_plain(user, password).tag == q(NS_SASL, 'success')
    finally:
        c.close()


def test_register_feature_advertised_on_open_host(server):
    c = _before_auth(server)
    try:
        assert c.features.find(q(NS_REGISTER_FEATURE, 'register')) is not None, tostr(c.features)
    finally:
        c.close()


def test_registration_form(server):
    c = _before_auth(server)
    try:
        el = c.iq('get', "<query xmlns='%s'/>" % NS_REGISTER)
        assert el.get('type') == 'result', tostr(el)
        query = el.find(q(NS_REGISTER, 'query'))
        assert query is not None, tostr(el)
        assert query.find(q(NS_REGISTER, 'username')) is not None, tostr(el)
        assert query.find(q(NS_REGISTER, 'password')) is not None, tostr(el)
    finally:
        c.close()


def test_register_then_login(server, run):
    from parleytest import login, logout
    user, pw = unique('new'), 'fresh-password'
    c = _before_auth(server)
    try:
        el = _register(c, user, pw)
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()
    server.passwords[(user, HOST)] = pw

    async def go():
        client = await login(server, user, mech='SCRAM-SHA-256')
        assert client.boundjid.bare == '%s@%s' % (user, HOST)
        await logout(client)
    run(go())


def test_register_existing_user_conflict(server):
    c = _before_auth(server)
    try:
        el = _register(c, 'alice', 'another-password')
        assert stanza_error(el) == 'conflict', tostr(el)
    finally:
        c.close()
    assert _can_login(server, 'alice', server.password('alice'))


def test_register_refused_on_closed_host(server):
    c = _before_auth(server, host=OTHER)
    try:
        assert c.features.find(q(NS_REGISTER_FEATURE, 'register')) is None, tostr(c.features)
        user = unique('nope')
        el = _register(c, user, 'some-password')
        assert el.get('type') == 'error', tostr(el)
        assert stanza_error(el) in ('not-allowed', 'forbidden', 'service-unavailable',
                                    'feature-not-implemented'), tostr(el)
    finally:
        c.close()
    assert not _can_login(server, user, 'some-password', host=OTHER)


def test_change_password(server):
    user, old, new = unique('pw'), 'first-password', 'second-password'
    server.register(user, HOST, old)
    c = RawClient(server.port)
    try:
        c.login(user, old, presence=False)
        el = _register(c, user, new)
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()
    assert _can_login(server, user, new)
    assert not _can_login(server, user, old)


def test_cancel_account(server):
    user, pw = unique('bye'), 'bye-password'
    server.register(user, HOST, pw)
    c = RawClient(server.port)
    try:
        c.login(user, pw, presence=False)
        c.send("<iq type='set' id='unreg1'><query xmlns='%s'><remove/></query></iq>" % NS_REGISTER)
        # XEP-0077 3.2: the server answers with a result (and may then close
        # the stream)
        el = c.wait_iq('unreg1')
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()
    # the answer comes first; the account goes once the sessions' presence
    # is out (a login in between is closed when it has gone)
    deadline = time.monotonic() + 10
    while server.ctl('user-exists', user, HOST).returncode == 0:
        assert time.monotonic() < deadline, 'the account is still there'
        time.sleep(0.1)
    assert not _can_login(server, user, pw)
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 1, (r.returncode, r.stderr)


def test_removal_outlives_a_stop(tmp_path):
    """A <remove/> is answered and the stream closed before the account
    goes; a stop of the module in between (here parleyd's shutdown, with
    the store busy so that the removal is still in flight) must not drop
    the removal unseen: the client was told the account is gone, so the
    outcome is logged, done or not."""
    import sqlite3
    import threading
    srv = parleytest.Parleyd(tmp_path / 'srv')
    srv.start_with_users()
    user = unique('gone')
    srv.register(user, HOST, 'pw-' + user)
    c = RawClient(srv.port)
    c.login(user, srv.password(user))
    db = sqlite3.connect(str(srv.dir / srv.sqlite_path), timeout=10, isolation_level=None)
    stopper = None
    try:
        db.execute('BEGIN IMMEDIATE')    # the removal's write waits for this
        el = c.iq('set', "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
        assert el.get('type') == 'result', tostr(el)
        assert c.stream_error() == 'not-authorized'
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        stopper.join(5.0)             # past the modules' stop
    finally:
        db.execute('ROLLBACK')
        db.close()
        if stopper is not None:
            stopper.join()
        c.close()
    log = srv.log()
    assert (find_lines(r'user %s removed their account' % user, log) or
            find_lines(r'the account of %s was not removed' % user, log)), log[-3000:]
