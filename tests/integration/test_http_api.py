"""The HTTP admin API over a real http listener: every command of the API
through POST /api/COMMAND with a token of scope all (the answer's code is
parleyctl's exit code, the HTTP status follows it, JSON commands answer
JSON), GET /api/ lists what a token may run, the scopes (a read-only
token cannot write: 403 and nothing changes), no or unknown tokens (401
with WWW-Authenticate), bad bodies, unknown commands and methods, tokens
revoked while parleyd runs, and finally restart and stop through the API.

Needs server/http.c (the HTTP listener); without it the file is skipped."""
import json
import time

import pytest

from httpapi import request, start_http_server
from parleytest import HOST, OTHER

STATUS = {0: 200, 1: 422, 2: 400, 3: 503, 4: 503, 5: 409}
ROOM = 'apiroom@conference.' + HOST

# Every command of the API, in the order they run, with its arguments and
# parleyctl's exit code for them on a fresh server (the accounts of
# parleytest.USERS; no shared_roster module, no LDAP).  restart and stop
# have tests of their own.
CASES = [
    ('status', [], 0),
    ('latency', [], 0),
    ('reload', [], 0),
    ('register', ['dave', HOST, 'dave-pw'], 0),
    ('register', ['dave', HOST, 'dave-pw'], 1),
    ('passwd', ['dave', HOST, 'dave-pw2'], 0),
    ('check-password', ['dave', HOST, 'dave-pw2'], 0),
    ('check-password', ['dave', HOST, 'wrong'], 1),
    ('auth-test', ['dave@' + HOST, 'dave-pw2'], 0),
    ('user-exists', ['dave', HOST], 0),
    ('registered-users', [HOST], 0),
    ('registered-users', [HOST, '--after', 'bob', '--limit', '2'], 0),
    ('registered-users-count', [HOST], 0),
    ('get-roster', ['alice@' + HOST], 0),
    ('get-roster', ['nobody@' + HOST], 1),
    ('offline-list', ['alice@' + HOST, '--limit', '5'], 0),
    ('offline-list', ['alice@' + HOST, '--limit', 'x'], 2),
    ('offline-count', ['alice@' + HOST], 0),
    ('fast-list', ['alice@' + HOST], 0),
    ('fast-revoke', ['alice@' + HOST], 1),
    ('fast-purge', [HOST], 0),
    ('connected-users', [], 0),
    ('connected-users-info', [], 0),
    ('components', [], 0),
    ('srg-create', [HOST, 'staff'], 1),
    ('srg-list', [HOST], 1),
    ('srg-info', [HOST, 'staff'], 1),
    ('srg-user-add', ['alice@' + HOST, HOST, 'staff'], 1),
    ('srg-user-del', ['alice@' + HOST, HOST, 'staff'], 1),
    ('srg-delete', [HOST, 'staff'], 1),
    ('muc-create', [ROOM], 0),
    ('muc-list', [HOST], 0),
    ('muc-info', [ROOM], 0),
    ('muc-set-affiliation', [ROOM, 'bob@' + HOST, 'member'], 0),
    ('muc-destroy', [ROOM], 0),
    ('pubsub-list', ['alice@' + HOST], 0),
    ('pubsub-info', ['alice@' + HOST, 'x'], 1),
    ('pubsub-delete', ['alice@' + HOST, 'x'], 1),
    ('pubsub-purge', ['alice@' + HOST, 'x'], 1),
    ('mam-purge', ['alice@' + HOST], 0),
    ('upload-list', ['alice', HOST], 1),
    ('upload-purge', ['alice', HOST], 1),
    ('ldap-test', ['alice@' + HOST], 2),
    ('kick-session', ['alice@' + HOST], 1),
    ('send-message', ['bob@' + HOST, 'alice@' + HOST, 'hello from the API'], 0),
    ('send-stanza', ['bob@' + HOST, 'alice@' + HOST, '<message><body>x</body></message>'], 0),
    ('announce', [HOST, '--online', 'hello'], 0),
    ('motd', [HOST, 'welcome'], 0),
    ('motd', [HOST], 0),
    ('stats', [], 0),
    ('s2s-list', [], 0),
    ('s2s-close', ['nowhere.example'], 1),
    ('backup', ['BACKUP'], 0),
    ('config-dump', [OTHER], 0),
    ('db', ['status'], 0),
    ('api-token-create', ['made-by-api', 'read-only'], 0),
    ('api-token-list', [], 0),
    ('api-token-revoke', ['made-by-api'], 0),
    ('unregister', ['dave', HOST], 0),
    ('user-exists', ['dave', HOST], 1),
]


@pytest.fixture(scope='module')
def api(tmp_path_factory):
    srv = start_http_server(tmp_path_factory, 'parley-api')
    srv.tokens = {}
    for scope in ('read-only', 'users', 'hosts', 'all'):
        r = srv.ctl('api-token-create', 'test-' + scope, scope)
        assert r.returncode == 0, r.stderr
        srv.tokens[scope] = r.stdout.strip()
    yield srv
    srv.finish()


def _post(srv, command, args=None, scope='all'):
    body = None if args is None else {'args': args}
    status, headers, data = request(srv, 'POST', '/api/' + command, body, srv.tokens[scope])
    return status, headers, json.loads(data)


def _api_commands(srv):
    r = srv.ctl('list-commands', '--json')
    assert r.returncode == 0, r.stderr
    return {c['name']: c for c in json.loads(r.stdout) if c['api_scope'] is not None}


def test_no_token_or_unknown_token(api):
    status, headers, data = request(api, 'GET', '/api/')
    assert status == 401, (status, data)
    assert headers['www-authenticate'].startswith('Bearer'), headers
    status, headers, data = request(api, 'POST', '/api/status', token='parley_' + '0' * 64)
    assert status == 401, (status, data)
    assert 'invalid_token' in headers['www-authenticate'], headers
    status, _, _ = request(api, 'GET', '/api/', headers={'Authorization': 'Basic YTpi'})
    assert status == 401


def test_list_follows_the_scope(api):
    table = _api_commands(api)
    status, _, data = request(api, 'GET', '/api/', token=api.tokens['all'])
    assert status == 200, data
    listed = {c['name'] for c in json.loads(data)['result']}
    assert listed == set(table), listed ^ set(table)
    status, _, data = request(api, 'GET', '/api/', token=api.tokens['read-only'])
    listed = {c['name'] for c in json.loads(data)['result']}
    assert listed == {n for n, c in table.items() if c['api_scope'] == 'read-only'}
    assert 'status' in listed and 'register' not in listed


def test_every_command(api):
    table = _api_commands(api)
    covered = {name for name, _, _ in CASES} | {'restart', 'stop'}
    assert covered == set(table), 'commands without a case here: %s' % (set(table) - covered)
    for name, args, code in CASES:
        args = [str(api.dir / 'api-backup.db') if a == 'BACKUP' else a for a in args]
        status, _, answer = _post(api, name, args)
        assert answer['code'] == code, (name, args, answer)
        assert status == STATUS[code], (name, status, answer)
        if code != 0:
            assert answer['message'], (name, answer)
        elif table[name]['json']:
            assert not isinstance(answer['result'], str), (name, answer)
        else:
            assert isinstance(answer['result'], str), (name, answer)


def test_answers_match_parleyctl(api):
    status, _, answer = _post(api, 'registered-users', [HOST], scope='read-only')
    assert status == 200, answer
    r = api.ctl('registered-users', '--json', HOST)
    assert answer['result'] == json.loads(r.stdout)
    status, _, answer = _post(api, 'user-exists', ['alice', HOST], scope='read-only')
    assert (status, answer['code']) == (200, 0), answer
    status, _, answer = _post(api, 'user-exists', ['nobody', HOST], scope='read-only')
    assert (status, answer['code']) == (422, 1), answer


def test_user_data_through_the_api(api):
    # a message stored offline for carol, read by a read-only token, as parleyctl shows it
    r = api.ctl('send-message', 'bob@' + HOST, 'carol@' + HOST, 'waiting for carol')
    assert r.returncode == 0, r.stderr
    for command, args in (('offline-list', ['carol@' + HOST]), ('get-roster', ['carol@' + HOST]),
                          ('registered-users', [HOST, '--limit', '2'])):
        status, _, answer = _post(api, command, args, scope='read-only')
        assert (status, answer['code']) == (200, 0), (command, answer)
        r = api.ctl(command, '--json', *args)
        assert answer['result'] == json.loads(r.stdout), command
    status, _, answer = _post(api, 'offline-list', ['carol@' + HOST], scope='read-only')
    assert [m['body'] for m in answer['result']['messages']] == ['waiting for carol']
    status, _, answer = _post(api, 'offline-count', ['carol@' + HOST], scope='read-only')
    assert answer['result'].strip() == '1'
    status, _, answer = _post(api, 'registered-users-count', [HOST], scope='read-only')
    users = json.loads(api.ctl('registered-users', '--json', HOST).stdout)['users']
    assert int(answer['result']) == len(users)
    status, _, answer = _post(api, 'registered-users', [HOST, '--limit', '0'], scope='read-only')
    assert (status, answer['code']) == (400, 2), answer


def test_named_arguments(api):
    table = {c['name']: c for c in json.loads(request(api, 'GET', '/api/', None,
                                                       api.tokens['all'])[2])['result']}
    assert table['register']['names'] == ['user', 'host', 'password']
    assert table['kick-session']['names'] == ['jid', 'reason']
    assert table['fast-list']['names'] is None
    status, _, answer = _post(api, 'register', {'host': HOST, 'user': 'nora', 'password': 'pw-nora'})
    assert status == 200, answer
    status, _, answer = _post(api, 'check-password', {'user': 'nora', 'host': HOST,
                                                      'password': 'pw-nora'})
    assert status == 200, answer
    status, _, answer = _post(api, 'unregister', {'user': 'nora'})
    assert status == 400, answer
    status, _, answer = _post(api, 'unregister', {'user': 'nora', 'host': HOST, 'extra': 'x'})
    assert status == 400, answer
    status, _, answer = _post(api, 'unregister', {'user': 'nora', 'host': HOST})
    assert status == 200, answer
    assert api.ctl('user-exists', 'nora', HOST).returncode == 1


def test_read_only_cannot_write(api):
    status, headers, answer = _post(api, 'register', ['erik', HOST, 'pw-erik'], scope='read-only')
    assert status == 403, answer
    assert 'insufficient_scope' in headers.get('www-authenticate', ''), headers
    assert api.ctl('user-exists', 'erik', HOST).returncode == 1
    for command, args in (('unregister', ['alice', HOST]), ('reload', []), ('stop', []),
                          ('api-token-create', ['x', 'all']), ('kick-session', ['alice@' + HOST])):
        status, _, answer = _post(api, command, args, scope='read-only')
        assert status == 403, (command, answer)
    assert api.ctl('user-exists', 'alice', HOST).returncode == 0
    # users may manage accounts, not the host; hosts the reverse
    status, _, answer = _post(api, 'register', ['erik', HOST, 'pw-erik'], scope='users')
    assert status == 200, answer
    status, _, answer = _post(api, 'reload', [], scope='users')
    assert status == 403, answer
    status, _, answer = _post(api, 'reload', [], scope='hosts')
    assert status == 200, answer
    status, _, answer = _post(api, 'unregister', ['erik', HOST], scope='hosts')
    assert status == 403, answer
    status, _, answer = _post(api, 'unregister', ['erik', HOST], scope='users')
    assert status == 200, answer


def test_bad_requests(api):
    token = api.tokens['all']
    for body in ('{', '[]', '{"args": [1]}', '{"args": "x"}', '{"args": [], "more": 1}',
                 '{"args": ["a\\u0000b"]}', '\xff'):
        status, _, data = request(api, 'POST', '/api/status', body.encode('latin-1'), token)
        assert status == 400, (body, status, data)
        assert 'error' in json.loads(data)
    status, _, data = request(api, 'POST', '/api/status', {'args': ['extra']}, token)
    assert status == 400 and json.loads(data)['code'] == 2, data
    status, _, _ = request(api, 'POST', '/api/no-such-command', None, token)
    assert status == 404
    status, _, _ = request(api, 'POST', '/api/restore', {'args': ['x']}, token)
    assert status == 404  # runs only while parleyd is stopped: not in the API
    status, headers, _ = request(api, 'GET', '/api/status', None, token)
    assert status == 405 and headers.get('allow') == 'POST', headers
    # the server still answers
    status, _, answer = _post(api, 'status', [])
    assert status == 200, answer


def test_token_revoked_while_running(api):
    r = api.ctl('api-token-create', 'short-lived', 'read-only')
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    status, _, _ = request(api, 'POST', '/api/status', None, token)
    assert status == 200
    assert api.ctl('api-token-revoke', 'short-lived').returncode == 0
    status, _, _ = request(api, 'POST', '/api/status', None, token)
    assert status == 401
    assert token not in api.log()


def test_keep_alive(api):
    """Several commands on one keep-alive connection: each answer comes
    from the loop after the command ran, and the next request is read
    after it."""
    import http.client
    conn = http.client.HTTPConnection('127.0.0.1', api.http_port, timeout=10)
    try:
        for command in ('status', 'stats', 'connected-users'):
            conn.request('POST', '/api/' + command, body='',
                         headers={'Authorization': 'Bearer ' + api.tokens['read-only']})
            resp = conn.getresponse()
            answer = json.loads(resp.read())
            assert resp.status == 200 and answer['code'] == 0, (command, answer)
        conn.request('GET', '/metrics')
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()


def _wait_http(srv, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(srv, 'POST', '/api/status', None, srv.tokens['read-only'])
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError('the API did not answer again within %ss' % timeout)


def _post_ending(srv, command):
    """POST a command that stops the server's HTTP connections (restart,
    stop): its answer is 200, or the connection closes before it (the
    stop closes every HTTP connection); a refusal fails."""
    import http.client
    try:
        status, _, answer = _post(srv, command, [])
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return
    assert status == 200, answer


def test_restart_then_stop(api):
    pid = api.proc.pid
    _post_ending(api, 'restart')
    assert api.wait_exit(timeout=1) is None, 'parleyd exited instead of restarting'
    _wait_http(api)
    assert api.running() and api.proc.pid == pid
    assert 'parleyd restarting' in api.log()
    _post_ending(api, 'stop')
    assert api.wait_exit() == 0
