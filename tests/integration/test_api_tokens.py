"""The HTTP admin API's side that needs no HTTP listener: parleyctl's token
commands against a running parleyd and offline (create prints the token
once, the file keeps only its SHA-256, list, revoke, bad names and
scopes), the http_api and metrics config sections (bad allow entries are
config errors naming the key), the scopes list-commands shows, and
doc/openapi.json, which must be what parleyctl api-openapi makes from the
command table now (regenerate it with: parleyctl api-openapi >
doc/openapi.json)."""
import hashlib
import json
import os
import stat

from parleytest import builddir, srcdir


def _tokens(server):
    path = server.dir / 'api-tokens'
    return path.read_text() if path.exists() else ''


def test_token_create_list_revoke_online(server):
    r = server.ctl('api-token-create', 'monitor', 'read-only')
    assert r.returncode == 0, (r.returncode, r.stderr)
    token = r.stdout.strip()
    assert token.startswith('parley_') and len(token) == 7 + 64, token
    text = _tokens(server)
    assert token not in text and token[7:] not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert stat.S_IMODE(os.stat(server.dir / 'api-tokens').st_mode) == 0o600
    assert 'token monitor created with scope read-only' in server.log()
    assert token not in server.log()

    r = server.ctl('api-token-create', 'monitor', 'all')
    assert r.returncode == 1 and 'exists' in r.stderr, (r.returncode, r.stderr)
    r = server.ctl('api-token-create', 'ops', 'superuser')
    assert r.returncode == 2 and 'unknown scope' in r.stderr, (r.returncode, r.stderr)
    r = server.ctl('api-token-create', 'bad/name', 'all')
    assert r.returncode == 2 and 'not a valid token name' in r.stderr, (r.returncode, r.stderr)

    r = server.ctl('api-token-create', 'ops', 'hosts')
    assert r.returncode == 0, r.stderr
    r = server.ctl('api-token-list', '--json')
    assert r.returncode == 0, r.stderr
    listed = {t['name']: t['scope'] for t in json.loads(r.stdout)}
    assert listed == {'monitor': 'read-only', 'ops': 'hosts'}, listed

    r = server.ctl('api-token-revoke', 'monitor')
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(token.encode()).hexdigest() not in _tokens(server)
    r = server.ctl('api-token-revoke', 'monitor')
    assert r.returncode == 1 and 'no token named monitor' in r.stderr, (r.returncode, r.stderr)
    r = server.ctl('api-token-list')
    assert r.returncode == 0 and r.stdout.startswith('ops hosts '), r.stdout


def test_tokens_offline_then_damaged_file(fresh_server):
    srv = fresh_server
    assert srv.stop() == 0
    r = srv.ctl('api-token-create', 'offline', 'users')
    assert r.returncode == 0, (r.returncode, r.stderr)
    token = r.stdout.strip()
    assert hashlib.sha256(token.encode()).hexdigest() in _tokens(srv)
    r = srv.ctl('api-token-list')
    assert r.returncode == 0 and r.stdout.startswith('offline users '), r.stdout
    # a line that is not a token: the commands say where, nothing is lost
    with open(srv.dir / 'api-tokens', 'a') as f:
        f.write('garbage\n')
    before = _tokens(srv)
    r = srv.ctl('api-token-create', 'second', 'all')
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert 'api-tokens:4: expected NAME SCOPE SHA256-HEX CREATED' in r.stderr, r.stderr
    assert _tokens(srv) == before
    srv.start()


def _check_config(server, extra):
    path = server.dir / ('extra-%d.yml' % abs(hash(extra)))
    path.write_text(server.config.read_text() + extra)
    return server.ctl('config-check', str(path))


def test_config_sections(server):
    r = _check_config(server, 'metrics:\n  enabled: true\n  allow: [10.0.0.0/8, "::1"]\n'
                              'http_api:\n  enabled: false\n  tokens_file: tokens.txt\n')
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    r = _check_config(server, 'metrics:\n  allow: [10.0.0.0/33]\n')
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "key 'metrics.allow'" in r.stderr and '10.0.0.0/33' in r.stderr, r.stderr
    r = _check_config(server, 'http_api:\n  allow: localhost\n')
    assert r.returncode == 1 and "key 'http_api.allow'" in r.stderr, r.stderr
    r = _check_config(server, 'http_api:\n  enable: true\n')
    assert r.returncode == 1 and 'http_api.enable' in r.stderr, r.stderr
    r = server.ctl('config-dump')
    assert r.returncode == 0, r.stderr
    assert 'metrics:\n  enabled: false\n' in r.stdout, r.stdout
    assert 'http_api:\n  enabled: false\n' in r.stdout, r.stdout


def test_list_commands_shows_scopes(server):
    r = server.ctl('list-commands', '--json')
    assert r.returncode == 0, r.stderr
    scopes = {c['name']: c['api_scope'] for c in json.loads(r.stdout)}
    assert scopes['status'] == 'read-only'
    assert scopes['register'] == 'users'
    assert scopes['reload'] == 'hosts'
    assert scopes['stop'] == 'all'
    assert scopes['restore'] is None      # only while parleyd is stopped: not in the API
    assert scopes['config-check'] is None  # runs inside parleyctl


def test_openapi_matches_the_command_table():
    import subprocess
    r = subprocess.run([str(builddir() / 'parleyctl'), 'api-openapi'], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    committed = (srcdir() / 'doc' / 'openapi.json').read_text()
    assert r.stdout == committed, \
        'doc/openapi.json is stale: regenerate it with parleyctl api-openapi > doc/openapi.json'
    doc = json.loads(committed)
    r = subprocess.run([str(builddir() / 'parleyctl'), 'list-commands', '--json'],
                       capture_output=True, text=True, timeout=30)
    table = json.loads(r.stdout)
    in_api = {c['name'] for c in table if c['api_scope'] is not None}
    assert {p[1:] for p in doc['paths'] if p != '/'} == in_api
    for c in table:
        if c['api_scope'] is not None:
            op = doc['paths']['/' + c['name']]['post']
            assert op['x-parley-scope'] == c['api_scope'], c['name']
            assert op['x-parley-json'] == c['json'], c['name']


def test_reload_says_restart(fresh_server):
    srv = fresh_server
    text = srv.config.read_text()
    srv.config.write_text(text + 'metrics:\n  allow: [10.0.0.0/8]\nhttp_api:\n  tokens_file: t.txt\n')
    r = srv.ctl('reload')
    assert r.returncode == 0, r.stderr
    assert 'metrics: changed; restart parleyd to apply' in r.stdout, r.stdout
    assert 'http_api: changed; restart parleyd to apply' in r.stdout, r.stdout
    srv.config.write_text(text)
    r = srv.ctl('reload')
    assert r.returncode == 0 and 'metrics:' not in r.stdout and 'http_api:' not in r.stdout, r.stdout
