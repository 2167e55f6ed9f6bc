"""Shared roster groups read from a real slapd (tests/ldap/slapd.sh, its own
instance here): groupOfNames groups with member DNs (one mapped through the
user search because its DN is not uid=...), a posixGroup with memberUid, a
membership change made with ldapmodify reaching an online member after a
refresh (1 s here), a name or label that is not XML text left out, and
slapd stopped during refreshes: the groups are kept and the failure is
logged once.  Entries added here before parleyd starts:
nested groups (a groupOfNames under ou=chat holding a groupOfUniqueNames
outside the group base and filter, itself holding a groupOfNames), a cycle
of two groups, and department numbers of the users.

Hosts:
  srg.local    methods [ldap]; shared_roster source ldap, groupOfNames under
               ou=groups, ldap_refresh 1s; ann is an admin (ad-hoc commands)
  posix.local  methods [ldap]; shared_roster source ldap, posixGroup,
               memberUid, mapping value
  all.local    as srg.local, with ldap_displayed all
  nested.local groupOfNames under ou=chat, nested groups searched under the
               suffix, roster group names from the groups' ou
  shallow.local as nested.local with ldap_nested_depth 1, names from cn
  dept.local   groups from the users' departmentNumber
"""
import asyncio
import subprocess
import time

import pytest

import parleytest
from parleytest import logout
from test_ldap import SUFFIX, ldap_block, ldap_built, serve_with_slapd, start_slapd
from test_shared_roster import items, login_w, roster

pytestmark = pytest.mark.skipif(not ldap_built(), reason='parleyd built --without-ldap')

SRG = 'srg.local'
POSIX = 'posix.local'
ALL = 'all.local'
NESTED = 'nested.local'
SHALLOW = 'shallow.local'
DEPT = 'dept.local'
HOSTS = (SRG, POSIX, ALL, NESTED, SHALLOW, DEPT)
PASSWORDS = {'ann': 'ann-secret', 'ben': 'ben-secret', 'cleo': 'cleo-secret',
             'eve': 'eve-secret'}
# the shared contacts' names: the users' cn (ldap_user_name_attr's default)
NAMES = {'ann': 'Ann Example', 'ben': 'Ben Example', 'cleo': 'Cleo Clear', 'eve': 'Eve Example'}
FAIL_LOG = 'cannot read the groups from the directory'
BACK_LOG = 'the groups are read from the directory again'
CYCLE_LOG = 'group loop: the nested groups form a cycle'
DEPTH_LOG = 'group team: groups nested more than 1 level'

# team (ou=chat) -> devs (groupOfUniqueNames, ou=depts: outside the group
# base and filter; ben with a uniqueMember bit string) -> qa -> Eve (a DN
# mapped through the user search); loop -> ring -> loop is a cycle.
NESTED_LDIF = """\
dn: ou=chat,{s}
objectClass: organizationalUnit
ou: chat

dn: ou=depts,{s}
objectClass: organizationalUnit
ou: depts

dn: cn=team,ou=chat,{s}
objectClass: groupOfNames
cn: team
ou: Team Chat
member: uid=ann,ou=people,{s}
member: cn=devs,ou=depts,{s}

dn: cn=devs,ou=depts,{s}
objectClass: groupOfUniqueNames
cn: devs
uniqueMember: uid=ben,ou=people,{s}#'0101'B
uniqueMember: cn=qa,ou=depts,{s}

dn: cn=qa,ou=depts,{s}
objectClass: groupOfNames
cn: qa
member: cn=Eve Example,ou=people,{s}

dn: cn=loop,ou=chat,{s}
objectClass: groupOfNames
cn: loop
member: uid=cleo,ou=people,{s}
member: cn=ring,ou=depts,{s}

dn: cn=ring,ou=depts,{s}
objectClass: groupOfNames
cn: ring
member: cn=loop,ou=chat,{s}
member: cn=Eve Example,ou=people,{s}
""".format(s=SUFFIX)


def department(dn, *values):
    return ('dn: %s,%s\nchangetype: modify\nadd: departmentNumber\n%s\n'
            % (dn, SUFFIX, ''.join('departmentNumber: %s\n' % v for v in values)))


# dan is left out by auth.ldap.filter (employeeType=disabled)
DEPARTMENTS = '\n'.join([department('uid=ann,ou=people', 'sales'),
                         department('uid=ben,ou=people', 'sales'),
                         department('uid=cleo,ou=people', 'ops'),
                         department('cn=Eve Example,ou=people', 'ops', 'SALES'),
                         department('uid=dan,ou=people', 'sales', 'ops')])


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    s = start_slapd(tmp_path_factory, 'slapd-srg')
    try:
        ldapmodify(s, NESTED_LDIF, add=True)
        ldapmodify(s, DEPARTMENTS)
    except Exception:
        s.stop()
        raise
    groups = "ldap_group_base: 'ou=groups,%s', ldap_refresh: 1s" % SUFFIX
    chat = ("ldap_group_base: 'ou=chat,%s', ldap_refresh: 1s, ldap_nested_groups: true, "
            "ldap_nested_base: '%s'" % (SUFFIX, SUFFIX))
    hosts = f"""\
  {SRG}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    admins: [ann@{SRG}]
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
  {NESTED}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      shared_roster: {{ source: ldap, {chat}, ldap_group_display_attr: ou }}
  {SHALLOW}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      shared_roster: {{ source: ldap, {chat}, ldap_nested_depth: 1 }}
  {DEPT}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      shared_roster: {{ source: ldap, ldap_refresh: 1s, ldap_groups_from: user_attribute,
                        ldap_user_group_attr: departmentNumber }}
"""
    yield from serve_with_slapd(tmp_path_factory, 'parley-ldap-srg', hosts, (s,))


def ldapmodify(s, ldif, add=False):
    r = subprocess.run(['ldapmodify', '-x', '-H', s.uri, '-D', 'cn=admin,' + SUFFIX,
                        '-w', 'admin-secret'] + (['-a'] if add else []), input=ldif,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, 'ldapmodify: %s %s' % (r.stdout, r.stderr)


def staff(change, uid):
    return ('dn: cn=staff,ou=groups,%s\nchangetype: modify\n%s: member\nmember: uid=%s,'
            'ou=people,%s\n' % (SUFFIX, change, uid, SUFFIX))


async def online(srv, user, host=SRG):
    """Logged in with a Watch attached before the stream opens, and
    interested (it gets roster pushes)."""
    c, w = await login_w(srv, user, host=host, password=PASSWORDS[user], mech='PLAIN')
    await c.get_roster()
    return c, w


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
        assert got == {'ben@' + SRG: ('both', NAMES['ben'], ['staff'], None)}, got
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
        assert got == {'cleo@' + SRG: ('both', NAMES['cleo'], ['ops'], None)}, got
        cc, _ = await online(env, 'cleo')
        got = items(await roster(cc))
        assert got == {'eve@' + SRG: ('both', NAMES['eve'], ['ops'], None)}, got
        await logout(ce, cc)
    run(scenario())


def test_posixgroup_memberuid(env, run):
    wait_log(env, 'shared_roster %s: 1 groups loaded' % POSIX)

    async def scenario():
        ca, wa = await online(env, 'ann', POSIX)
        got = items(await roster(ca))
        assert got == {'cleo@' + POSIX: ('both', NAMES['cleo'], ['unix'], None)}, got
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
        assert got == {'ben@' + ALL: ('both', NAMES['ben'], ['staff'], None),
                       'cleo@' + ALL: ('both', NAMES['cleo'], ['ops'], None),
                       'eve@' + ALL: ('both', NAMES['eve'], ['ops'], None)}, got
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


def test_adhoc_commands_show_the_directory_and_refuse_changes(env, run):
    """The shared roster ad-hoc commands list and show the directory's
    groups; the change commands answer <not-allowed/> at once, with the
    message parleyctl gives."""
    from slixmpp.exceptions import IqError
    from test_adhoc import run_command
    from test_srg_adhoc import SRG as NODE, fields, table
    wait_log(env, 'shared_roster %s: 2 groups loaded' % SRG)

    async def scenario():
        ca, _ = await online(env, 'ann')
        for p in ('xep_0004', 'xep_0030', 'xep_0050'):
            ca.register_plugin(p)
        try:
            r = await run_command(ca, NODE + 'list', None, host=SRG)
            assert sorted(x['group'] for x in table(r)) == ['ops', 'staff'], table(r)
            f = fields(await run_command(ca, NODE + 'info', {'group': 'staff'}, host=SRG))
            assert f['description'] == 'everyone at the desk', f
            assert sorted(f['members']) == ['ann@' + SRG, 'ben@' + SRG], f
            for n in ('create', 'delete', 'user-add', 'user-del'):
                with pytest.raises(IqError) as e:
                    await asyncio.wait_for(ca['xep_0050'].send_command(SRG, NODE + n), 10)
                assert e.value.condition == 'not-allowed', (n, e.value.condition)
                assert 'come from ldap and are read-only' in e.value.text, e.value.text
        finally:
            await logout(ca)
    run(scenario())
    r = env.ctl('srg-info', SRG, 'staff')
    assert '  ann@srg.local\n  ben@srg.local\n' in r.stdout, r.stdout


def test_name_change_in_the_directory_is_pushed(env, run):
    """Shared contacts are named by their cn; a new cn reaches an online
    member as a roster push after the next refresh."""
    def set_cn(cn):
        ldapmodify(env.slapd, 'dn: uid=ben,ou=people,%s\nchangetype: modify\nreplace: cn\n'
                              'cn: %s\n' % (SUFFIX, cn))

    async def scenario():
        ca, wa = await online(env, 'ann')
        assert items(await roster(ca))['ben@' + SRG][1] == 'Ben Example'
        set_cn('Benjamin Example')
        try:
            item = await wa.push('ben@' + SRG, timeout=8)
            assert item['name'] == 'Benjamin Example', item
            assert item['subscription'] == 'both' and 'staff' in item['groups'], item
        finally:
            set_cn('Ben Example')
        item = await wa.push('ben@' + SRG, timeout=8)
        assert item['name'] == 'Ben Example', item
        await logout(ca)
    run(scenario(), timeout=60)


def test_values_that_are_not_xml_text_are_left_out(env, run):
    """A cn with U+FFFE (valid UTF-8, not an XML character) is no contact
    name, and a group label (ou) with a control character is none either:
    the roster stays well-formed, the contact is named by its user name
    and the group by its cn; a line names the entry and attribute."""
    import base64

    def set_attr(dn, attr, value):
        ldapmodify(env.slapd, 'dn: %s,%s\nchangetype: modify\nreplace: %s\n%s:: %s\n'
                              % (dn, SUFFIX, attr, attr, base64.b64encode(value.encode()).decode()))

    def srg_name(group):
        return env.ctl('srg-info', NESTED, group).stdout

    async def scenario():
        ca, wa = await online(env, 'ann')
        assert items(await roster(ca))['ben@' + SRG][1] == 'Ben Example'
        set_attr('uid=ben,ou=people', 'cn', 'Ben \ufffe Example')
        try:
            item = await wa.push('ben@' + SRG, timeout=8)
            assert item['name'] == 'ben', item
            assert item['subscription'] == 'both' and 'staff' in item['groups'], item
            got = items(await roster(ca))
            assert got == {'ben@' + SRG: ('both', 'ben', ['staff'], None)}, got
        finally:
            set_attr('uid=ben,ou=people', 'cn', 'Ben Example')
        item = await wa.push('ben@' + SRG, timeout=8)
        assert item['name'] == 'Ben Example', item
        await logout(ca)
    run(scenario(), timeout=60)
    assert 'ldap: uid=ben,ou=people,%s: a value of cn is left out' % SUFFIX in env.log()
    set_attr('cn=team,ou=chat', 'ou', 'Team \x1b[1mChat')
    try:
        deadline = time.monotonic() + 10
        while 'group: team\nname: team\n' not in srg_name('team'):
            assert time.monotonic() < deadline, srg_name('team')
            time.sleep(0.2)
        assert 'ldap: cn=team,ou=chat,%s: a value of ou is left out' % SUFFIX in env.log()
    finally:
        set_attr('cn=team,ou=chat', 'ou', 'Team Chat')
        deadline = time.monotonic() + 10
        while 'group: team\nname: Team Chat\n' not in srg_name('team'):
            assert time.monotonic() < deadline, srg_name('team')
            time.sleep(0.2)


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
            assert items(await roster(ca)) == {'ben@' + SRG: ('both', NAMES['ben'], ['staff'], None)}
            assert not [p for p in wa.pushes if 'ben@' + SRG in p['roster']['items']]
            await wa.no_presence('ben@' + SRG, wait=0.2)
        finally:
            env.slapd.restart()
        deadline = time.monotonic() + 15
        while BACK_LOG not in env.log():
            assert time.monotonic() < deadline, 'no "%s" in the log' % BACK_LOG
            await asyncio.sleep(0.1)
        assert items(await roster(ca)) == {'ben@' + SRG: ('both', NAMES['ben'], ['staff'], None)}
        await logout(ca, cb)
    run(scenario(), timeout=60)


def test_nested_groups_give_members_roster_items_and_presence(env, run):
    """team holds ann and the group devs, which lies outside the group base
    and filter and holds ben (uniqueMember with a bit string) and the group
    qa, which holds Eve by a DN that does not name her uid: two levels."""
    wait_log(env, 'shared_roster %s: 2 groups loaded' % NESTED)

    async def scenario():
        ca, wa = await online(env, 'ann', NESTED)
        got = items(await roster(ca))
        assert got == {'ben@' + NESTED: ('both', NAMES['ben'], ['Team Chat'], None),
                       'eve@' + NESTED: ('both', NAMES['eve'], ['Team Chat'], None)}, got
        cb, wb = await online(env, 'ben', NESTED)
        got = items(await roster(cb))
        assert got == {'ann@' + NESTED: ('both', NAMES['ann'], ['Team Chat'], None),
                       'eve@' + NESTED: ('both', NAMES['eve'], ['Team Chat'], None)}, got
        await wa.presence('ben@' + NESTED)
        await wb.presence('ann@' + NESTED)
        ce, we = await online(env, 'eve', NESTED)
        got = items(await roster(ce))
        # loop's members (cleo, and eve through ring) under loop's cn: no ou
        assert got == {'ann@' + NESTED: ('both', NAMES['ann'], ['Team Chat'], None),
                       'ben@' + NESTED: ('both', NAMES['ben'], ['Team Chat'], None),
                       'cleo@' + NESTED: ('both', NAMES['cleo'], ['loop'], None)}, got
        await wa.presence('eve@' + NESTED)
        await we.presence('ann@' + NESTED)
        await we.presence('ben@' + NESTED)
        await logout(cb)
        await wa.presence('ben@' + NESTED, 'unavailable')
        await logout(ca, ce)
    run(scenario())


def test_nested_group_cycle_is_logged_once_and_expanded_once(env, run):
    wait_log(env, 'shared_roster %s: 2 groups loaded' % NESTED)
    wait_log(env, 'shared_roster %s: %s' % (NESTED, CYCLE_LOG))
    time.sleep(2.5)   # more refreshes meet the cycle again
    log = env.log()
    assert log.count('shared_roster %s: %s' % (NESTED, CYCLE_LOG)) == 1, log
    assert 'cn=loop,ou=chat,%s is a member of cn=ring,ou=depts,%s' % (SUFFIX, SUFFIX) in log, log

    async def scenario():
        cc, _ = await online(env, 'cleo', NESTED)
        got = items(await roster(cc))
        assert got == {'eve@' + NESTED: ('both', NAMES['eve'], ['loop'], None)}, got
        await logout(cc)
    run(scenario())
    r = env.ctl('srg-info', NESTED, 'loop')
    assert r.returncode == 0, r.stderr
    assert 'members: 2\n  cleo@%s\n  eve@%s\n' % (NESTED, NESTED) in r.stdout, r.stdout


def test_nested_depth_limit_leaves_deeper_groups_out(env, run):
    """ldap_nested_depth 1: devs (one level down) counts, qa (two) does not."""
    wait_log(env, 'shared_roster %s: 2 groups loaded' % SHALLOW)
    wait_log(env, 'shared_roster %s: %s' % (SHALLOW, DEPTH_LOG))

    async def scenario():
        ca, _ = await online(env, 'ann', SHALLOW)
        got = items(await roster(ca))
        assert got == {'ben@' + SHALLOW: ('both', NAMES['ben'], ['team'], None)}, got
        await logout(ca)
    run(scenario())


def test_display_attribute_names_the_roster_group(env):
    wait_log(env, 'shared_roster %s: 2 groups loaded' % NESTED)
    r = env.ctl('srg-info', NESTED, 'team')
    assert r.returncode == 0, r.stderr
    assert 'group: team\nname: Team Chat\n' in r.stdout, r.stdout
    assert '  ann@{h}\n  ben@{h}\n  eve@{h}\n'.format(h=NESTED) in r.stdout, r.stdout
    r = env.ctl('srg-info', SHALLOW, 'team')
    assert r.returncode == 0, r.stderr
    assert 'group: team\nname: team\n' in r.stdout, r.stdout


def test_groups_from_a_user_attribute(env, run):
    """Each departmentNumber is a group of the users that have it (values
    differing in case are one group); dan is left out by auth.ldap.filter."""
    wait_log(env, 'shared_roster %s: 2 groups loaded' % DEPT)
    r = env.ctl('srg-list', DEPT)
    assert r.returncode == 0 and r.stdout.split() == ['SALES', 'ops'], (r.stdout, r.stderr)

    async def scenario():
        ca, wa = await online(env, 'ann', DEPT)
        got = items(await roster(ca))
        assert got == {'ben@' + DEPT: ('both', NAMES['ben'], ['SALES'], None),
                       'eve@' + DEPT: ('both', NAMES['eve'], ['SALES'], None)}, got
        cc, wc = await online(env, 'cleo', DEPT)
        got = items(await roster(cc))
        assert got == {'eve@' + DEPT: ('both', NAMES['eve'], ['ops'], None)}, got
        cb, wb = await online(env, 'ben', DEPT)
        await wa.presence('ben@' + DEPT)
        await wb.presence('ann@' + DEPT)
        await wc.no_presence('ben@' + DEPT, wait=0.3)
        await logout(ca, cb, cc)
    run(scenario())


@pytest.mark.parametrize('kind', ['no-group-attr', 'nested-values', 'filter-u'])
def test_options_that_cannot_work_stop_the_start(tmp_path_factory, kind):
    opts, auth_extra, expected = {
        'no-group-attr': ('ldap_groups_from: user_attribute', '',
                          'ldap_groups_from user_attribute needs ldap_user_group_attr'),
        'nested-values': ('ldap_nested_groups: true, ldap_member_attr: memberUid, '
                          'ldap_member_mapping: value', '',
                          'ldap_nested_groups needs ldap_member_mapping dn'),
        'filter-u': ('ldap_groups_from: user_attribute, ldap_user_group_attr: ou',
                     ", filter: '(|(uid=%u)(mail=%u))'",
                     'auth.ldap.filter uses %u'),
    }[kind]
    block = ldap_block(['ldap://127.0.0.1:1'])
    if auth_extra:
        block = ("{ servers: ['ldap://127.0.0.1:1'], base: 'ou=people,%s', bind_dn: "
                 "'cn=parley,ou=services,%s', password_file: ldap-service.pw%s }"
                 % (SUFFIX, SUFFIX, auth_extra))
    hosts = f"""\
  {SRG}:
    auth: {{ methods: [ldap], ldap: {block} }}
    modules:
      shared_roster: {{ source: ldap, {opts} }}
"""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('srg-bad-' + kind), extra_hosts=hosts)
    (srv.dir / 'ldap-service.pw').write_text('parley-secret\n')
    with pytest.raises(parleytest.ServerError) as e:
        srv.start(timeout=15)
    msg = str(e.value)
    assert expected in msg and "module 'shared_roster' on host %s" % SRG in msg, msg
    assert str(srv.config) in msg, msg   # the position of the module's entry
    srv.stop()


def test_group_entries_with_a_login_filter_start(tmp_path_factory):
    """Group entries and contact names need no auth filter: a filter with %u
    (which no listing can fill in) does not stop the module; the names are
    then read from every entry that has them."""
    block = ("{ servers: ['ldap://127.0.0.1:1'], base: 'ou=people,%s', bind_dn: "
             "'cn=parley,ou=services,%s', password_file: ldap-service.pw, "
             "filter: '(|(uid=%%u)(mail=%%u))' }" % (SUFFIX, SUFFIX))
    hosts = f"""\
  {SRG}:
    auth: {{ methods: [ldap], ldap: {block} }}
    modules:
      shared_roster: {{ source: ldap }}
"""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('srg-login-filter'), extra_hosts=hosts)
    (srv.dir / 'ldap-service.pw').write_text('parley-secret\n')
    srv.start(timeout=15)
    srv.finish()
