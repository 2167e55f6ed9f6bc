"""External service discovery (XEP-0215, urn:xmpp:extdisco:2): the list of
services, the type filter, time-limited credentials of the TURN REST API
scheme (recomputed here with hmac and checked), their expiry, the
credentials request, the disco feature, who gets nothing (an account of
another host), and a configuration the server refuses.  When Debian's
coturn is installed (turnserver, turnutils_uclient), a TURN allocation with
the generated credentials is made against a coturn configured as
doc/admin-guide.md shows."""
import base64
import calendar
import hashlib
import hmac
import os
import shutil
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, OTHER, q, stanza_error, tostr
from test_muc import connect, disco_info, features, iq

NS_EXTDISCO = 'urn:xmpp:extdisco:2'
SECRET = 'shared-turn-secret'
TTL = 600

SERVICES = ('[{ type: stun, host: stun.test.local, port: 3478, transport: udp }, '
            '{ type: turn, host: 127.0.0.1, port: %d, transport: udp, secret: %s, ttl: %d, '
            'restricted: true, name: Relay }, '
            '{ type: turns, host: turn.test.local, transport: tcp, secret: %s }]')


def turn_port():
    return int(os.environ.get('PARLEY_TEST_TURN_PORT', '0')) or parleytest.free_port()


def extdisco_server(tmp_path_factory, name, services):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp(name))
    text = srv.config.read_text()
    marker = '      register: {'
    srv.config.write_text(text.replace(marker, '      extdisco: { services: %s }\n%s' % (services, marker), 1))
    return srv


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    port = turn_port()
    srv = extdisco_server(tmp_path_factory, 'extdisco', SERVICES % (port, SECRET, TTL, SECRET))
    srv.turn_port = port
    srv.start_with_users()
    yield srv
    srv.finish()


def services(c, typ=None, to=HOST):
    t = " type='%s'" % typ if typ else ''
    return iq(c, 'get', to, "<services xmlns='%s'%s/>" % (NS_EXTDISCO, t))


def listed(r):
    assert r.get('type') == 'result', tostr(r)
    el = r.find(q(NS_EXTDISCO, 'services'))
    if el is None:
        el = r.find(q(NS_EXTDISCO, 'credentials'))
    assert el is not None, tostr(r)
    return [dict(s.attrib) for s in el.findall(q(NS_EXTDISCO, 'service'))]


def check_credentials(s, user_bare, secret=SECRET, ttl=TTL):
    """The username is expiry:JID, the password its HMAC-SHA1 under secret,
    expires the same instant in ISO 8601, about ttl from now."""
    expiry, jid = s['username'].split(':', 1)
    assert jid == user_bare, s
    want = base64.b64encode(hmac.new(secret.encode(), s['username'].encode(), hashlib.sha1).digest()).decode()
    assert s['password'] == want, s
    assert calendar.timegm(time.strptime(s['expires'], '%Y-%m-%dT%H:%M:%SZ')) == int(expiry), s
    assert abs(int(expiry) - (time.time() + ttl)) < 30, 'expiry %s is not now + %s s' % (expiry, ttl)


def test_feature(server):
    c = connect(server, 'alice')
    try:
        assert NS_EXTDISCO in features(disco_info(c, HOST))
        d = connect(server, 'dave', host=OTHER)
        try:
            assert NS_EXTDISCO not in features(disco_info(d, OTHER)), 'extdisco runs where configured only'
        finally:
            d.close()
    finally:
        c.close()


def test_list_and_credentials(server):
    c = connect(server, 'alice')
    try:
        got = listed(services(c))
        assert [s['type'] for s in got] == ['stun', 'turn', 'turns'], got
        stun, turn, turns = got
        assert stun == {'type': 'stun', 'host': 'stun.test.local', 'port': '3478', 'transport': 'udp'}, stun
        assert turn['host'] == '127.0.0.1' and turn['port'] == str(server.turn_port), turn
        assert turn['transport'] == 'udp' and turn['restricted'] == '1' and turn['name'] == 'Relay', turn
        check_credentials(turn, 'alice@' + HOST)
        assert turns['port'] == '5349' and turns['transport'] == 'tcp', turns
        check_credentials(turns, 'alice@' + HOST, ttl=86400)
    finally:
        c.close()


def test_type_filter(server):
    c = connect(server, 'bob')
    try:
        got = listed(services(c, 'turn'))
        assert [s['host'] for s in got] == ['127.0.0.1'], got
        check_credentials(got[0], 'bob@' + HOST)
        assert [s['type'] for s in listed(services(c, 'stun'))] == ['stun']
        assert listed(services(c, 'nothing')) == []
    finally:
        c.close()


def test_credentials_request(server):
    c = connect(server, 'carol')
    try:
        r = iq(c, 'get', HOST, "<credentials xmlns='%s'><service host='127.0.0.1' type='turn'/></credentials>"
               % NS_EXTDISCO)
        got = listed(r)
        assert len(got) == 1, got
        check_credentials(got[0], 'carol@' + HOST)
        # a service without a secret has no credentials; an unknown one neither
        for host in ('stun.test.local', 'nowhere.test.local'):
            r = iq(c, 'get', HOST, "<credentials xmlns='%s'><service host='%s'/></credentials>"
                   % (NS_EXTDISCO, host))
            assert stanza_error(r) == 'item-not-found', tostr(r)
        r = iq(c, 'get', HOST, "<credentials xmlns='%s'/>" % NS_EXTDISCO)
        assert stanza_error(r) == 'bad-request', tostr(r)
        r = iq(c, 'set', HOST, "<services xmlns='%s'/>" % NS_EXTDISCO)
        assert stanza_error(r) == 'bad-request', tostr(r)
    finally:
        c.close()


def test_other_host_gets_nothing(server):
    d = connect(server, 'dave', host=OTHER)
    try:
        r = services(d, to=HOST)
        assert r.get('type') == 'error', 'a user of another host got %s' % tostr(r)
        assert 'password' not in tostr(r)
    finally:
        d.close()


def test_bad_configuration(tmp_path_factory):
    for bad in ('[]', '[{ type: turn }]', '[{ type: relay, host: x }]', '[{ host: x, port: 70000 }]',
                '[{ host: x, colour: red }]'):
        srv = extdisco_server(tmp_path_factory, 'extdisco-bad', bad)
        r = subprocess.run([srv.parleyd, '-t', '-c', str(srv.config)], capture_output=True, text=True,
                           cwd=str(srv.dir), env=srv.env, timeout=30)
        assert r.returncode != 0, 'services %s accepted: %s' % (bad, r.stdout + r.stderr)
        assert 'extdisco' in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which('turnserver') is None or shutil.which('turnutils_uclient') is None,
                    reason='coturn is not installed')
def test_coturn_accepts_the_credentials(server, tmp_path):
    conf = tmp_path / 'turnserver.conf'
    # the configuration doc/admin-guide.md shows, on a test port
    conf.write_text('listening-ip=127.0.0.1\nlistening-port=%d\nrealm=%s\nuse-auth-secret\n'
                    'static-auth-secret=%s\nfingerprint\nno-tls\nno-dtls\nno-cli\nallow-loopback-peers\n'
                    'min-port=49160\nmax-port=49200\nno-stdout-log\nlog-file=%s\n'
                    % (server.turn_port, HOST, SECRET, tmp_path / 'turn.log'))
    turn = subprocess.Popen(['turnserver', '-c', str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        c = connect(server, 'alice')
        try:
            s = listed(services(c, 'turn'))[0]
        finally:
            c.close()
        good = subprocess.run(['turnutils_uclient', '-p', str(server.turn_port), '-u', s['username'],
                               '-w', s['password'], '-y', '-n', '1', '-m', '1', '-l', '100', '127.0.0.1'],
                              capture_output=True, text=True, timeout=60)
        assert good.returncode == 0 and 'Total lost packets 0' in good.stdout, good.stdout[-2000:] + good.stderr
        bad = subprocess.run(['turnutils_uclient', '-p', str(server.turn_port), '-u', s['username'],
                              '-w', 'wrong' + s['password'], '-y', '-n', '1', '-m', '1', '-l', '100',
                              '127.0.0.1'], capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 or 'Total lost packets 0' not in bad.stdout, \
            'coturn accepted a wrong password: the test proves nothing'
    finally:
        turn.terminate()
        turn.wait(10)


def test_config_dump_hides_the_secret(server):
    r = server.ctl('config-dump')
    assert r.returncode == 0, r.stderr
    assert 'extdisco' in r.stdout and 'stun.test.local' in r.stdout, r.stdout
    assert SECRET not in r.stdout, 'config-dump shows the TURN secret'


def test_unauthenticated_gets_nothing(server, raw):
    c = raw()
    c.open()
    c.starttls()
    c.send("<iq type='get' id='ext1' to='%s'><services xmlns='%s'/></iq>" % (HOST, NS_EXTDISCO))
    got = []
    try:
        while True:
            e = c.next(2.0)
            if e is None:
                break
            got.append(e)
    except (TimeoutError, parleytest.StreamClosed):
        pass
    text = ''.join(tostr(e) for e in got)
    assert 'password' not in text and 'stun.test.local' not in text, text
    answers = [e for e in got if e.get('id') == 'ext1']
    assert got, "the server said nothing to an iq before authentication"
    assert not answers or answers[0].get("type") == "error", text
