"""auth.scram_cache_ttl with the ldap method against a real slapd
(tests/ldap/slapd.sh): a PLAIN login the directory accepted (a bind as the
user) leaves SCRAM keys for the lifetime, slixmpp then logs in with
SCRAM-SHA-256; a password changed in the directory keeps working over SCRAM
until the keys expire or the directory refuses it once; an entry deleted
from the directory loses its keys at its next login (a SCRAM login with
them asks the directory whether the user still exists).

Hosts: sc.local (methods [ldap], scram_cache_ttl 4s) and plainonly.local
(methods [ldap], no option: PLAIN only, as before)."""
import re
import time

import pytest

import parleytest
from parleytest import NS_SASL, login, logout, q, tostr, unique
from scramclient import Client, scram, tls_exporter
from test_ldap import SUFFIX, ldap_block, ldap_built, ldap_modify, serve_with_slapd, start_slapd
from test_scram_sha512 import _wait_log

pytestmark = pytest.mark.skipif(not ldap_built(), reason='parleyd built --without-ldap')

TTL = 4
SC = 'sc.local'


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    s = start_slapd(tmp_path_factory, 'slapd-sc')
    hosts = f"""\
  {SC}:
    auth: {{ methods: [ldap], scram_cache_ttl: {TTL}s, ldap: {ldap_block([s.uri])} }}
  plainonly.local:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
"""
    yield from serve_with_slapd(tmp_path_factory, 'parley-ldap-sc', hosts, (s,))


def add_user(env, password):
    user = unique('lsc')
    ldap_modify(env.slapd, 'dn: uid=%s,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\n'
                'uid: %s\ncn: %s\nsn: Cached\nuserPassword: %s\n' % (user, SUFFIX, user, user, password))
    return user


def set_ldap_password(env, user, password):
    ldap_modify(env.slapd, 'dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: userPassword\n'
                'userPassword: %s\n' % (user, SUFFIX, password))


def client(env, host=SC):
    c = Client(env.port, host=host, timeout=15)
    c.open()
    c.starttls()
    return c


def plain(env, user, password, host=SC):
    c = client(env, host)
    try:
        el = c.auth_plain(user, password)
        return 'success' if el.tag == q(NS_SASL, 'success') else \
            [parleytest.local(ch.tag) for ch in el if parleytest.local(ch.tag) != 'text'][0]
    finally:
        c.close()


def scram_ok(env, user, password, mech='SCRAM-SHA-256'):
    c = client(env)
    try:
        if mech.endswith('-PLUS'):
            r = scram(c, user, password, mech, 'p=tls-exporter,,', cbdata=tls_exporter(c.sock))
        else:
            r = scram(c, user, password, mech, 'n,,')
        return r.ok
    finally:
        c.close()


def kept(env, user):
    return env.db_query('SELECT COUNT(*) FROM scram_cache WHERE server_host = ? AND username = ?',
                        (SC, user), host=SC)[0][0]


def _kept_line(user):
    return r'host %s: %s: SCRAM keys kept for %d s from the password the ldap method accepted' % (
        re.escape(SC), user, TTL)


def test_mechanisms(env):
    c = client(env)
    try:
        assert c.mechanisms() == ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN'], tostr(c.features)
    finally:
        c.close()
    c = client(env, 'plainonly.local')
    try:
        assert c.mechanisms() == ['PLAIN'], tostr(c.features)
    finally:
        c.close()


def test_plain_fills_then_slixmpp_scram(env, run):
    user = add_user(env, 'first-secret')
    assert not scram_ok(env, user, 'first-secret')
    assert plain(env, user, 'first-secret') == 'success'
    assert _wait_log(env, _kept_line(user))
    assert kept(env, user) == 1

    async def go():
        c = await login(env, user, host=SC, password='first-secret', mech='SCRAM-SHA-256')
        assert c.boundjid.bare == '%s@%s' % (user, SC)
        await logout(c)
    run(go())
    assert scram_ok(env, user, 'first-secret', 'SCRAM-SHA-256-PLUS')
    # the option off on the other host: nothing kept for it
    assert plain(env, user, 'first-secret', 'plainonly.local') == 'success'
    assert env.db_query('SELECT COUNT(*) FROM scram_cache WHERE server_host = ?', ('plainonly.local',),
                        host=SC) == [(0,)]


def test_directory_password_change(env):
    """The old password keeps working over SCRAM after a change in the
    directory until the keys expire (as a cached answer would); then
    SCRAM fails until a PLAIN login with the new password."""
    user = add_user(env, 'old-secret')
    assert plain(env, user, 'old-secret') == 'success'
    filled = time.monotonic()
    assert _wait_log(env, _kept_line(user))
    set_ldap_password(env, user, 'new-secret')
    assert scram_ok(env, user, 'old-secret'), "the kept keys are the old password's"
    assert not scram_ok(env, user, 'new-secret')
    time.sleep(max(0.0, filled + TTL + 1.2 - time.monotonic()))
    assert not scram_ok(env, user, 'old-secret'), 'kept keys outlived auth.scram_cache_ttl'
    assert kept(env, user) == 0
    assert plain(env, user, 'new-secret') == 'success'
    assert _wait_log(env, _kept_line(user))
    assert scram_ok(env, user, 'new-secret') and not scram_ok(env, user, 'old-secret')


def test_directory_refusal_drops_keys(env):
    user = add_user(env, 'a-secret')
    assert plain(env, user, 'a-secret') == 'success'
    assert _wait_log(env, _kept_line(user))
    assert plain(env, user, 'not-a-secret') == 'not-authorized'
    time.sleep(0.3)
    assert kept(env, user) == 1, 'a wrong password dropped the kept keys'
    set_ldap_password(env, user, 'b-secret')
    assert plain(env, user, 'a-secret') == 'not-authorized'
    assert _wait_log(env, r'%s: kept SCRAM keys dropped \(the method refused the password they were '
                     r'made from\)' % user)
    assert kept(env, user) == 0
    assert not scram_ok(env, user, 'a-secret')


def test_entry_deleted_drops_keys(env):
    user = add_user(env, 'gone-secret')
    assert plain(env, user, 'gone-secret') == 'success'
    assert _wait_log(env, _kept_line(user))
    ldap_modify(env.slapd, 'dn: uid=%s,ou=people,%s\nchangetype: delete\n' % (user, SUFFIX))
    assert plain(env, user, 'gone-secret') == 'not-authorized'
    assert _wait_log(env, r'%s: kept SCRAM keys dropped \(the method does not know the user\)' % user)
    assert kept(env, user) == 0


def test_entry_deleted_fails_scram_at_once(env):
    """A good SCRAM proof with kept keys is followed by a look-up of the
    entry: deleted from the directory, the login fails and the keys go."""
    user = add_user(env, 'del-secret')
    assert plain(env, user, 'del-secret') == 'success'
    assert _wait_log(env, _kept_line(user))
    assert scram_ok(env, user, 'del-secret')
    ldap_modify(env.slapd, 'dn: uid=%s,ou=people,%s\nchangetype: delete\n' % (user, SUFFIX))
    assert not scram_ok(env, user, 'del-secret')
    assert _wait_log(env, r'%s: kept SCRAM keys dropped \(the method does not know the user\)' % user)
    assert kept(env, user) == 0
