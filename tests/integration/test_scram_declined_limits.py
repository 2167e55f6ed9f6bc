"""A SCRAM-SHA-256 login for an account with SCRAM-SHA-1 keys only is
declined (no password can be tried), and the failed-login limits and the
stream's attempts must treat it exactly like one for a name that does not
exist: otherwise repeating it tells a client which names are such
accounts.  Each check runs the same attempts against both kinds of name
and compares what a client sees: a challenge, or a refusal at once
(rate-limited), and when the stream is closed."""
import time

import pytest

import parleytest
from parleytest import find_lines, tostr, unique
from scramclient import scram
from test_scram_cb import client  # noqa: F401  (the fixture: a client after STARTTLS)
from test_scram_sha1_only import _sha1_only

WINDOW = 3.0


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """Small limits with a short window, so each check starts clean after
    waiting WINDOW seconds."""
    srv = parleytest.Parleyd(
        tmp_path_factory.mktemp('declined'),
        global_auth='  max_failures_per_ip: 5\n  max_failures_per_user: 3\n  failure_window: %ds\n'
        % WINDOW)
    srv.start_with_users()
    yield srv
    srv.finish()


def _clean_window():
    time.sleep(WINDOW + 0.5)


def _attempt(client, name):
    """One SCRAM-SHA-256 attempt on a new stream: 'challenge' (the
    exchange ran and failed at the proof) or 'refused' (no challenge: the
    limits refused it at once)."""
    c = client()
    r = scram(c, name, 'not-the-password', 'SCRAM-SHA-256', 'n,,')
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    c.close()
    return 'challenge' if r.server_first else 'refused'


def test_per_account_limit_alike(server, client):
    """max_failures_per_user is 3: the fourth attempt on either name is
    refused without a challenge."""
    seen = {}
    for kind, name in (('sha1-only', _sha1_only(server)), ('unknown', unique('ghost'))):
        _clean_window()
        seen[kind] = [_attempt(client, name) for _ in range(5)]
    assert seen['sha1-only'] == seen['unknown'], seen
    assert seen['unknown'] == ['challenge'] * 3 + ['refused'] * 2, seen


def test_per_address_limit_alike(server, client):
    """max_failures_per_ip is 5: after five attempts on five different
    names of either kind, a correct login from the address is refused."""
    for kind in ('sha1-only', 'unknown'):
        _clean_window()
        names = [_sha1_only(server) if kind == 'sha1-only' else unique('ghost') for _ in range(5)]
        assert [_attempt(client, n) for n in names] == ['challenge'] * 5, kind
        c = client()
        r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256', 'n,,')
        assert not r.ok and not r.server_first, (kind, tostr(r.el))
        c.close()
    assert find_lines(r'user=alice@\S+ reason=rate-limited', server.log())


def test_stream_attempts_alike(server, client):
    """limits.auth_attempts is 3: the stream is closed after the third
    declined attempt as after the third one for an unknown name."""
    for kind, name in (('sha1-only', _sha1_only(server)), ('unknown', unique('ghost'))):
        _clean_window()
        c = client()
        for i in range(3):
            r = scram(c, name, 'not-the-password', 'SCRAM-SHA-256', 'n,,')
            assert r.server_first and not r.ok, (kind, i, tostr(r.el))
        assert c.wait_closed(5), kind


def test_falling_back_takes_the_count_back(server, client):
    """Four declined attempts from the address, each followed by a login
    to that account with SCRAM-SHA-1 on the same stream, leave the
    address's count where it was: five unknown names after them are
    needed to reach the limit, as on a clean address."""
    _clean_window()
    for _ in range(4):
        user = _sha1_only(server)
        c = client()
        r = scram(c, user, server.password(user), 'SCRAM-SHA-256', 'n,,')
        assert r.server_first and not r.ok, tostr(r.el)
        r = scram(c, user, server.password(user), 'SCRAM-SHA-1', 'n,,')
        assert r.ok, tostr(r.el)
        c.close()
    assert [_attempt(client, unique('ghost')) for _ in range(4)] == ['challenge'] * 4
    c = client()
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-1', 'n,,')
    assert r.ok, tostr(r.el)
