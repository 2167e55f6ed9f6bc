"""parleyctl ldap-test against a real slapd (tests/ldap/slapd.sh, its own
instance here): the login search as a login sends it (the user's name
escaped in the filter), the entries found with their attributes (a photo
as its size and type, never its bytes), whether the name resolves to one
entry, the vCard mod_vcard answers, the user's shared roster groups (source
ldap and source sql), the refusal of a host that uses no directory, and the
directory down (exit 4, the server named).

Hosts:
  dir.local     methods [ldap]; vcard source ldap; shared_roster source ldap
                (groupOfNames under ou=groups)
  sqlsrg.local  methods [ldap]; vcard in the store; shared_roster source sql
  bare.local    methods [ldap]; neither vcard nor shared_roster
  test.local    internal accounts only (no directory)
"""
import json
import os
import time

import pytest

import parleytest
from test_ldap import SUFFIX, ldap_block, ldap_built, serve_with_slapd, start_slapd

pytestmark = pytest.mark.skipif(not ldap_built(), reason='parleyd built --without-ldap')

DIR = 'dir.local'
SQLSRG = 'sqlsrg.local'
BARE = 'bare.local'


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    s = start_slapd(tmp_path_factory, 'slapd-ctl')
    hosts = f"""\
  {DIR}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      vcard: {{ source: ldap, ldap_nickname: displayName }}
      shared_roster: {{ source: ldap, ldap_group_base: 'ou=groups,{SUFFIX}', ldap_refresh: 1h }}
  {SQLSRG}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      shared_roster: {{}}
  {BARE}:
    auth: {{ methods: [ldap], ldap: {ldap_block([s.uri])} }}
    modules:
      vcard: false
"""
    yield from serve_with_slapd(tmp_path_factory, 'parley-ldap-ctl', hosts, (s,))


def ldap_test(env, jid, *extra):
    return env.ctl(*extra, 'ldap-test', jid)


def wait_groups_loaded(env, host, timeout=10):
    deadline = time.monotonic() + timeout
    while 'shared_roster %s: ' % host not in env.log() or \
            'groups loaded' not in env.log():
        assert time.monotonic() < deadline, 'the groups of %s were never loaded' % host
        time.sleep(0.1)


def test_escaped_filter_and_the_entry(env):
    """The name 'k+r,o(o)*' goes into the filter escaped as a login escapes
    it (RFC 4515), and resolves to its one entry."""
    r = ldap_test(env, 'k+r,o(o)*@' + DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    esc = r'k+r,o\28o\29\2a'
    want = ('filter: (&(|(uid=%s)(mail=%s))(&(objectClass=inetOrgPerson)'
            '(!(employeeType=disabled))))' % (esc, esc))
    assert want in out, out
    assert 'base: ou=people,%s' % SUFFIX in out, out
    assert 'answered by: %s' % env.slapd.uri in out, out
    assert 'attributes: 1.1 (none: the DN only)' in out, out
    # the DN as the server wrote it (slapd: hex escapes)
    assert r'dn: uid=k\2Br\2Co(o)*,ou=people,%s' % SUFFIX in out, out
    assert 'resolves to exactly one entry' in out, out
    assert 'bind' not in r.stderr


def test_entry_attributes_photo_and_vcard(env):
    r = ldap_test(env, 'ann@' + DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    photo = open(os.path.join(env.slapd.dir, 'data.ldif')).read()
    import base64
    b64 = [ln.split(' ', 1)[1] for ln in photo.splitlines() if ln.startswith('jpegPhoto:: ')][0]
    size = len(base64.b64decode(b64))
    assert 'dn: uid=ann,ou=people,%s' % SUFFIX in out, out
    # the vCard lookup asks for the mapped attributes and shows them
    assert 'attributes: cn sn givenName displayName mail telephoneNumber o ou title l ' \
           'jpegPhoto thumbnailPhoto' in out, out
    assert 'cn: Ann Example' in out and 'mail: ann@parley.test' in out, out
    assert 'telephoneNumber: +1 555 0100' in out, out
    assert 'jpegPhoto: (binary, %d bytes, image/jpeg)' % size in out, out
    assert b64 not in out and b64[:40] not in out, 'the photo was dumped'
    # the vCard a get is answered with, its photo summarised
    assert '<FN>Ann Example</FN>' in out, out
    assert '<EMAIL><INTERNET/><USERID>ann@parley.test</USERID></EMAIL>' in out, out
    assert ('<PHOTO><TYPE>image/jpeg</TYPE><BINVAL>[%d bytes, not shown]</BINVAL></PHOTO>'
            % size) in out, out


def test_shared_groups_of_a_member(env):
    wait_groups_loaded(env, DIR)
    r = ldap_test(env, 'ann@' + DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert 'shared roster groups (source ldap' in out, out
    assert 'groups searched: base ou=groups,%s, scope subtree, filter (objectClass=groupOfNames)' \
        % SUFFIX in out, out
    assert 'last read: 20' in out, out
    assert 'ann@%s is a member of 1 of the 2 groups held' % DIR in out, out
    assert 'staff: label "staff", 2 members, description "everyone at the desk"' in out, out
    r = ldap_test(env, 'eve@' + DIR)
    assert 'eve@%s is a member of 1 of the 2 groups held' % DIR in r.stdout, r.stdout
    assert 'ops: label "ops", 2 members' in r.stdout, r.stdout


def test_shared_groups_from_the_store(env):
    assert env.ctl('srg-create', SQLSRG, 'desk', '--name', 'Front desk').returncode == 0
    assert env.ctl('srg-user-add', 'ben@' + SQLSRG, SQLSRG, 'desk').returncode == 0
    r = ldap_test(env, 'ben@' + SQLSRG)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert 'shared roster groups (source sql' in out, out
    assert 'desk: label "Front desk", 1 members' in out, out
    # sections that do not apply say so in one line
    assert 'vCard lookup: the vcard module keeps vCards in the store' in out, out
    r = ldap_test(env, 'ann@' + SQLSRG)
    assert 'is a member of 0 of the 1 groups held' in r.stdout, r.stdout


def test_sections_that_do_not_apply(env):
    r = ldap_test(env, 'ben@' + BARE)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert 'vCard lookup: the vcard module is not enabled on %s' % BARE in lines, r.stdout
    assert 'shared roster groups: the shared_roster module is not enabled on %s' % BARE in lines, \
        r.stdout
    assert lines[-1].startswith('shared roster groups:'), r.stdout


def test_json(env):
    wait_groups_loaded(env, DIR)
    r = ldap_test(env, 'ann@' + DIR, '--json')
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc['user'] == 'ann' and doc['host'] == DIR
    login = doc['login']
    assert login['resolves'] == 'one entry'
    assert login['dn'] == 'uid=ann,ou=people,' + SUFFIX
    assert login['search']['attributes'] == []
    assert login['search']['answered_by'] == env.slapd.uri
    vc = doc['vcard']['search']['entries'][0]['attributes']
    assert vc['cn'] == ['Ann Example']
    assert vc['jpegPhoto'][0]['binary'] is True and vc['jpegPhoto'][0]['type'] == 'image/jpeg'
    assert '<FN>Ann Example</FN>' in doc['vcard']['vcard']
    groups = doc['shared_roster']
    assert groups['source'] == 'ldap' and groups['filter'] == '(objectClass=groupOfNames)'
    assert [g['name'] for g in groups['groups']] == ['staff']


def test_unknown_user_has_no_entry(env):
    r = ldap_test(env, 'nobody@' + DIR)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'entries found: 0' in r.stdout, r.stdout
    assert 'no entry: a login is refused' in r.stdout, r.stdout
    assert 'no entry in the directory' in r.stderr, r.stderr
    # its vCard is the empty one
    assert "vCard answered: <vCard xmlns='vcard-temp'/>" in r.stdout or \
        'vCard answered: <vCard xmlns="vcard-temp"/>' in r.stdout, r.stdout


def test_ambiguous_name_shows_both_entries(env):
    r = ldap_test(env, 'twin@' + DIR)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'dn: uid=twin,ou=people,%s' % SUFFIX in r.stdout, r.stdout
    assert 'dn: uid=twin2,ou=people,%s' % SUFFIX in r.stdout, r.stdout
    assert 'more than one entry: a login is refused' in r.stdout, r.stdout


def test_not_an_ldap_host_and_unknown_host(env):
    r = ldap_test(env, 'alice@' + parleytest.HOST)
    assert r.returncode == 2, r.stdout + r.stderr
    assert 'uses no LDAP directory' in r.stderr, r.stderr
    r = ldap_test(env, 'ann@nowhere.example')
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'not served here' in r.stderr, r.stderr
    assert ldap_test(env, 'ann').returncode == 2


def test_directory_down_is_temporary_failure(env):
    s = env.slapd
    s.stop()
    try:
        r = ldap_test(env, 'ann@' + DIR)
    finally:
        s.restart()
    assert r.returncode == 4, r.stdout + r.stderr
    assert s.uri in r.stderr, r.stderr
    assert "Can't contact LDAP server" in r.stderr or 'marked down' in r.stderr or \
        'skipped' in r.stderr, r.stderr
    assert 'unavailable' in r.stderr, r.stderr
    assert 'answered by: no server' in r.stdout, r.stdout
