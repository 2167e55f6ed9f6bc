"""Shared roster groups read from a real slapd (tests/ldap/slapd.sh, its own
instance here): groupOfNames groups with member DNs (one mapped through the
user search because its DN is not uid=...), a posixGroup with memberUid, a
membership change made with ldapmodify reaching an online member after a
refresh (1 s here), and slapd stopped during refreshes: the groups are kept
and the failure is logged once.

Hosts:
  srg.local    methods [ldap]; shared_roster source ldap, groupOfNames under
               ou=groups, ldap_refresh 1s
  posix.local  methods [ldap]; shared_roster source ldap, posixGroup,
               memberUid, mapping value
  all.local    as srg.local, with ldap_displayed all
"""
import asyncio
import os
import shutil
import subprocess
import time

import pytest

import parleytest
from parleytest import login, logout
from test_ldap import SUFFIX, Slapd, ldap_block, ldap_built
from test_shared_roster import Watch, items, roster

pytestmark = pytest.mark.skipif(not ldap_built(), reason='parleyd built --without-ldap')

SRG = 'srg.local'
POSIX = 'posix.local'
ALL = 'all.local'
HOSTS = (SRG, POSIX, ALL)
PASSWORDS = {'ann': 'ann-secret', 'ben': 'ben-secret', 'cleo': 'cleo-secret',
             'eve': 'eve-secret'}
FAIL_LOG = 'cannot read the groups from the directory'
BACK_LOG = 'the groups are read from the directory again'


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    if shutil.which('slapd') is None and not os.path.exists('/usr/sbin/slapd'):
        pytest.fail('slapd is not installed (scripts/deps.sh test installs slapd and ldap-utils)')
    s = Slapd(tmp_path_factory.mktemp('slapd-srg'))
    s.start()
    groups = "ldap_group_base: 'ou=groups,%s', ldap_refresh: 1s" % SUFFIX
    hosts = f"""\
  {SRG}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      shared_roster: {{ source: ldap, {groups} }}
  {POSIX}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      shared_roster: {{ source: ldap, {groups}, ldap_group_filter: '(objectClass=posixGroup)',
                        ldap_member_attr: memberUid, ldap_member_mapping: value }}
  {ALL}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      shared_roster: {{ source: ldap, {groups}, ldap_displayed: all }}
"""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-ldap-srg'), extra_hosts=hosts)
    (srv.dir / 'ldap-service.pw').write_text('parley-secret\n')
    try:
        srv.start()
    except Exception:
        s.stop()
        raise
    srv.slapd = s
    yield srv
    try:
        srv.finish()
    finally:
        s.stop()


def ldapmodify(s, ldif):
    r = subprocess.run(['ldapmodify', '-x', '-H', s.uri, '-D', 'cn=admin,' + SUFFIX,
                        '-w', 'admin-secret'], input=ldif, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, 'ldapmodify: %s %s' % (r.stdout, r.stderr)


def staff(change, uid):
    return ('dn: cn=staff,ou=groups,%s\nchangetype: modify\n%s: member\nmember: uid=%s,'
            'ou=people,%s\n' % (SUFFIX, change, uid, SUFFIX))


async def online(srv, user, host=SRG):
    """Logged in with a Watch attached before the stream opens, and
    interested (it gets roster pushes)."""
    made = {}
    orig = parleytest.make_client

    def make(*args, **kw):
        c = orig(*args, **kw)
        made['w'] = Watch(c)
        return c
    parleytest.make_client = make
    try:
        c = await login(srv, user, host=host, password=PASSWORDS[user], mech='PLAIN')
    finally:
        parleytest.make_client = orig
    await c.get_roster()
    return c, made['w']


def wait_log(srv, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, 'no "%s" in the log' % text
        time.sleep(0.1)


def test_first_roster_holds_the_ldap_group_and_presence_flows(env, run):
    wait_log(env, 'shared_roster %s: 2 groups loaded' % SRG)

    async def scenario():
        ca, wa = await online(env, 'ann')
        got = items(await roster(ca))
        assert got == {'ben@' + SRG: ('both', 'ben', ['staff'], None)}, got
        cb, wb = await online(env, 'ben')
        await wa.presence('ben@' + SRG)
        await wb.presence('ann@' + SRG)
        await logout(cb)
        await wa.presence('ben@' + SRG, 'unavailable')
        await logout(ca)
    run(scenario())


def test_member_dns_are_mapped_through_one_user_search(env, run):
    """eve's entry is cn=Eve Example,...: her uid comes from the user search;
    the DN without an entry is left out."""
    wait_log(env, 'shared_roster %s: 2 groups loaded' % SRG)

    async def scenario():
        ce, _ = await online(env, 'eve')
        got = items(await roster(ce))
        assert got == {'cleo@' + SRG: ('both', 'cleo', ['ops'], None)}, got
        cc, _ = await online(env, 'cleo')
        got = items(await roster(cc))
        assert got == {'eve@' + SRG: ('both', 'eve', ['ops'], None)}, got
        await logout(ce, cc)
    run(scenario())


def test_posixgroup_memberuid(env, run):
    wait_log(env, 'shared_roster %s: 1 groups loaded' % POSIX)

    async def scenario():
        ca, wa = await online(env, 'ann', POSIX)
        got = items(await roster(ca))
        assert got == {'cleo@' + POSIX: ('both', 'cleo', ['unix'], None)}, got
        cc, wc = await online(env, 'cleo', POSIX)
        await wa.presence('cleo@' + POSIX)
        await wc.presence('ann@' + POSIX)
        await logout(ca, cc)
    run(scenario())


def test_displayed_all_shows_every_group(env, run):
    wait_log(env, 'shared_roster %s: 2 groups loaded' % ALL)

    async def scenario():
        ca, _ = await online(env, 'ann', ALL)
        got = items(await roster(ca))
        assert got == {'ben@' + ALL: ('both', 'ben', ['staff'], None),
                       'cleo@' + ALL: ('both', 'cleo', ['ops'], None),
                       'eve@' + ALL: ('both', 'eve', ['ops'], None)}, got
        await logout(ca)
    run(scenario())


def test_srg_commands_show_the_directory_and_refuse_changes(env):
    r = env.ctl('srg-list', SRG)
    assert r.returncode == 0 and r.stdout.split() == ['ops', 'staff'], (r.stdout, r.stderr)
    r = env.ctl('srg-info', SRG, 'staff')
    assert r.returncode == 0, r.stderr
    assert 'description: everyone at the desk' in r.stdout, r.stdout
    assert '  ann@srg.local\n  ben@srg.local\n' in r.stdout, r.stdout
    r = env.ctl('srg-user-add', 'cleo@' + SRG, SRG, 'staff')
    assert r.returncode != 0, r.stdout
    assert 'come from ldap and are read-only' in r.stdout + r.stderr, (r.stdout, r.stderr)


def test_directory_change_is_pushed_after_a_refresh(env, run):
    async def scenario():
        ca, wa = await online(env, 'ann')
        cc, wc = await online(env, 'cleo')
        assert 'cleo@' + SRG not in items(await roster(ca))
        ldapmodify(env.slapd, staff('add', 'cleo'))
        try:
            item = await wa.push('cleo@' + SRG, timeout=8)
            assert item['subscription'] == 'both', item
            assert 'staff' in item['groups'], item
            # cleo is online: her presence reaches ann, and ann's reaches her
            await wa.presence('cleo@' + SRG)
            await wc.presence('ann@' + SRG)
            assert items(await roster(ca))['cleo@' + SRG][0] == 'both'
        finally:
            ldapmodify(env.slapd, staff('delete', 'cleo'))
        item = await wa.push('cleo@' + SRG, timeout=8)
        assert item['subscription'] == 'remove', item
        await wa.presence('cleo@' + SRG, 'unavailable')
        assert 'cleo@' + SRG not in items(await roster(ca))
        await logout(ca, cc)
    run(scenario(), timeout=60)


def test_slapd_stopped_during_refreshes_keeps_the_groups(env, run):
    wait_log(env, 'shared_roster %s: 2 groups loaded' % SRG)

    async def scenario():
        ca, wa = await online(env, 'ann')
        cb, wb = await online(env, 'ben')
        await wa.presence('ben@' + SRG)
        await asyncio.sleep(0.3)
        wa.presences.clear()   # the probe's answers (ben's last unavailable) among them
        wa.pushes.clear()
        env.slapd.stop()
        try:
            deadline = time.monotonic() + 10
            while FAIL_LOG not in env.log():
                assert time.monotonic() < deadline, 'no "%s" in the log' % FAIL_LOG
                await asyncio.sleep(0.1)
            await asyncio.sleep(3.5)   # three more refreshes fail
            log = env.log()
            # once per host whose refreshes fail, not once per refresh
            assert log.count(FAIL_LOG) == len(HOSTS), log
            assert log.count('cannot load the shared roster groups') == len(HOSTS), log
            # the groups are kept: nothing pushed, ben still in the roster
            assert items(await roster(ca)) == {'ben@' + SRG: ('both', 'ben', ['staff'], None)}
            assert not [p for p in wa.pushes if 'ben@' + SRG in p['roster']['items']]
            await wa.no_presence('ben@' + SRG, wait=0.2)
        finally:
            env.slapd.restart()
        deadline = time.monotonic() + 15
        while BACK_LOG not in env.log():
            assert time.monotonic() < deadline, 'no "%s" in the log' % BACK_LOG
            await asyncio.sleep(0.1)
        assert items(await roster(ca)) == {'ben@' + SRG: ('both', 'ben', ['staff'], None)}
        await logout(ca, cb)
    run(scenario(), timeout=60)
