"""The user directory (XEP-0055) and vCard avatars (XEP-0153) of a host whose
vCards come from a real slapd (tests/ldap/slapd.sh, its own instance here),
with a small company added under ou=acme by ldapadd: searches by name, by
email, by prefix, by city and organisation, the result limit, values full
of filter specials that find nothing, entries the auth filter leaves out,
values that are not XML text left out of a well-formed result;
the photo hash in presence (a JPEG, a PNG, none), refreshed
when the vCard is read from the directory again; slapd stopped: the search
is a temporary error and other users go on.  And the configuration check's
refusals (search_all false, a mismatched source, %u in the auth filter).

Hosts:
  dir.local   methods [ldap], base ou=acme, vcard source ldap (cache_ttl
              2s), vjud with max_results 3 (source auto: the directory)
  exp.local   the same directory, vjud with source ldap written out
"""
import base64
import hashlib
import subprocess
import time

import pytest

import parleytest
from parleytest import NS_CLIENT, NS_STANZA_ERR, RawClient, q, tostr
from test_ldap import SUFFIX, ldap_built, serve_with_slapd, start_slapd

pytestmark = pytest.mark.skipif(not ldap_built(), reason='parleyd built --without-ldap')

DIR = 'dir.local'
EXP = 'exp.local'
BASE = 'ou=acme,' + SUFFIX
NS_SEARCH = 'jabber:iq:search'
NS_DATA = 'jabber:x:data'
NS_UPDATE = 'vcard-temp:x:update'
NS_VCARD = 'vcard-temp'

# the photos: the vcard module knows their type by their first bytes (a PNG
# in jpegPhoto is sent as image/png; slapd has no thumbnailPhoto)
ADA_PHOTO = b'\xff\xd8\xff\xe0' + bytes(range(256)) * 3 + b'\xff\xd9'
ADA_PHOTO2 = b'\xff\xd8\xff\xe0' + bytes(reversed(range(256))) * 2 + b'\xff\xd9'
GRACE_PNG = b'\x89PNG\r\n\x1a\n' + bytes(range(7, 200))

# uid: (cn, sn, givenName, mail, o, ou, l, extra LDIF lines)
PEOPLE = {
    'ada': ('Ada Lovelace', 'Lovelace', 'Ada', 'ada@acme.test', 'Acme', 'Research', 'London',
            ['displayName: Countess',
             'jpegPhoto:: ' + base64.b64encode(ADA_PHOTO).decode()]),
    'alan': ('Alan Turing', 'Turing', 'Alan', 'alan@acme.test', 'Acme', 'Research', 'Manchester',
             []),
    'grace': ('Grace Hopper', 'Hopper', 'Grace', 'grace@navy.test', 'Navy', 'Compilers',
              'Arlington', ['jpegPhoto:: ' + base64.b64encode(GRACE_PNG).decode()]),
    'adele': ('Adele Goldberg', 'Goldberg', 'Adele', 'adele@acme.test', 'Acme', 'Languages',
              'London', []),
    'adam': ('Adam Smith', 'Smith', 'Adam', 'adam@acme.test', 'Acme', 'Economics', 'London', []),
    'adrian': ('Adrian Smith', 'Smith', 'Adrian', 'adrian@acme.test', 'Acme', 'Economics',
               'Paris', []),
    # left out by the auth filter: never found
    'ghost': ('Ghost Writer', 'Writer', 'Ghost', 'ghost@acme.test', 'Ghost Corp', 'None',
              'London', ['employeeType: disabled']),
}


def password(uid):
    return uid + '-secret'


def company_ldif():
    out = ['dn: %s' % BASE, 'objectClass: organizationalUnit', 'ou: acme', '']
    for uid, (cn, sn, given, mail, o, ou, loc, extra) in PEOPLE.items():
        out += ['dn: uid=%s,%s' % (uid, BASE), 'objectClass: inetOrgPerson', 'uid: ' + uid,
                'cn: ' + cn, 'sn: ' + sn, 'givenName: ' + given, 'mail: ' + mail, 'o: ' + o,
                'ou: ' + ou, 'l: ' + loc, 'userPassword: ' + password(uid)] + extra + ['']
    # an entry without a user name: never found either
    out += ['dn: cn=Meeting Room,%s' % BASE, 'objectClass: inetOrgPerson', 'cn: Meeting Room',
            'sn: Room', 'o: Acme', 'l: London', '']
    return '\n'.join(out)


def ldap_admin(slapd, tool, ldif):
    r = subprocess.run([tool, '-x', '-H', slapd.uri, '-D', 'cn=admin,' + SUFFIX,
                        '-w', 'admin-secret'], input=ldif, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr


def ldap_block(uri, filt="(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"):
    return ("{ servers: [%s], base: '%s', uids: [uid], filter: '%s', "
            "bind_dn: 'cn=parley,ou=services,%s', password_file: ldap-service.pw, "
            "network_timeout: 2s, timeout: 3s, retry_interval: 1s, pool_size: 2 }"
            % (uri, BASE, filt, SUFFIX))


def hosts_yaml(uri):
    return f"""\
  {DIR}:
    auth: {{ methods: [ldap], ldap: {ldap_block(uri)} }}
    modules:
      vcard: {{ source: ldap, cache_ttl: 2s }}
      vjud: {{ max_results: 3 }}
  {EXP}:
    auth: {{ methods: [ldap], ldap: {ldap_block(uri)} }}
    modules:
      vcard: {{ source: ldap, cache_ttl: 2s }}
      vjud: {{ source: ldap, max_results: 50 }}
"""


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    s = start_slapd(tmp_path_factory, 'slapd-dir')
    try:
        ldap_admin(s, 'ldapadd', company_ldif())
    except Exception:
        s.stop()
        raise
    yield from serve_with_slapd(tmp_path_factory, 'parley-ldap-dir', hosts_yaml(s.uri), (s,),
                                lambda srv: srv.create_users())


def connect(env, uid, host=DIR, presence=False, resource=None):
    c = RawClient(env.port, host=host, timeout=10)
    c.login(uid, password(uid), resource=resource or parleytest.unique('r'), presence=presence)
    return c


# ---- searches ---------------------------------------------------------------------

def legacy(c, host=DIR, **fields):
    payload = "<query xmlns='%s'>%s</query>" % (
        NS_SEARCH, ''.join('<%s>%s</%s>' % (k, v, k) for k, v in fields.items()))
    return c.iq('set', payload, to=host)


def form(c, host=DIR, **fields):
    fs = ''.join("<field var='%s'><value>%s</value></field>" % (k, v) for k, v in fields.items())
    payload = ("<query xmlns='%s'><x xmlns='%s' type='submit'><field var='FORM_TYPE' "
               "type='hidden'><value>%s</value></field>%s</x></query>"
               % (NS_SEARCH, NS_DATA, NS_SEARCH, fs))
    return c.iq('set', payload, to=host)


def legacy_items(r):
    assert r.get('type') == 'result', tostr(r)
    out = {}
    for it in r.find(q(NS_SEARCH, 'query')).findall(q(NS_SEARCH, 'item')):
        out[it.get('jid')] = {k: (it.findtext(q(NS_SEARCH, k)) or '')
                              for k in ('first', 'last', 'nick', 'email')}
    return out


def form_items(r):
    assert r.get('type') == 'result', tostr(r)
    x = r.find('%s/%s' % (q(NS_SEARCH, 'query'), q(NS_DATA, 'x')))
    assert x is not None and x.get('type') == 'result', tostr(r)
    out = {}
    for it in x.findall(q(NS_DATA, 'item')):
        vals = {f.get('var'): f.findtext(q(NS_DATA, 'value')) or ''
                for f in it.findall(q(NS_DATA, 'field'))}
        out[vals['jid']] = vals
    return out, x


def jids(*uids, host=DIR):
    return {'%s@%s' % (u, host) for u in uids}


def test_search_by_name(env):
    c = connect(env, 'ada')
    try:
        got = legacy_items(legacy(c, last='Turing'))
        assert got == {'alan@' + DIR: {'first': 'Alan', 'last': 'Turing', 'nick': '',
                                       'email': 'alan@acme.test'}}, got
        # case does not matter; every field given must match
        assert set(legacy_items(legacy(c, first='GRACE', last='hopper'))) == jids('grace')
        assert legacy_items(legacy(c, first='Grace', last='Turing')) == {}
        # the full name and the nickname (displayName), with the form
        got, x = form_items(form(c, fn='ada lovelace'))
        assert set(got) == jids('ada'), got
        row = got['ada@' + DIR]
        assert row['fn'] == 'Ada Lovelace' and row['nick'] == 'Countess', row
        assert row['locality'] == 'London' and row['orgname'] == 'Acme', row
        assert row['first'] == 'Ada' and row['last'] == 'Lovelace', row
        assert row['email'] == 'ada@acme.test', row
        assert x.find(q(NS_DATA, 'title')) is None, tostr(x)
        assert set(form_items(form(c, nick='countess'))[0]) == jids('ada')
        # by the user name
        assert set(form_items(form(c, user='grace'))[0]) == jids('grace')
        # a whole field, not a part of it
        assert legacy_items(legacy(c, last='Love')) == {}
    finally:
        c.close()


def test_search_by_email(env):
    c = connect(env, 'alan')
    try:
        assert set(legacy_items(legacy(c, email='ALAN@acme.test'))) == jids('alan')
        assert set(legacy_items(legacy(c, email='grace@navy.test'))) == jids('grace')
        assert legacy_items(legacy(c, email='alan')) == {}
        assert set(legacy_items(legacy(c, email='grace@*'))) == jids('grace')
    finally:
        c.close()


def test_search_by_prefix_city_and_organisation(env):
    c = connect(env, 'grace')
    try:
        assert set(legacy_items(legacy(c, last='Hop*'))) == jids('grace')
        assert set(legacy_items(legacy(c, last='smi*'))) == jids('adam', 'adrian')
        assert set(form_items(form(c, fn='ada l*'))[0]) == jids('ada')
        got, _ = form_items(form(c, locality='manchester'))
        assert set(got) == jids('alan'), got
        got, _ = form_items(form(c, orgname='navy'))
        assert set(got) == jids('grace'), got
        # '*' alone: anything (with another field that narrows)
        assert set(form_items(form(c, fn='*', orgname='Navy'))[0]) == jids('grace')
    finally:
        c.close()


def test_limit_and_entries_left_out(env):
    c = connect(env, 'adam')
    try:
        # ada, adele, adam and adrian: max_results is 3
        got, x = form_items(form(c, first='ad*'))
        assert len(got) == 3 and set(got) <= jids('ada', 'adele', 'adam', 'adrian'), got
        assert 'more' in (x.findtext(q(NS_DATA, 'title')) or ''), tostr(x)
        assert len(legacy_items(legacy(c, first='ad*'))) == 3
        # five at Acme: the search's size limit (4) is reached, and the
        # entries that came are still answered
        got, x = form_items(form(c, orgname='acme'))
        assert len(got) == 3 and set(got) <= jids('ada', 'alan', 'adele', 'adam', 'adrian'), got
        assert 'more' in (x.findtext(q(NS_DATA, 'title')) or ''), tostr(x)
    finally:
        c.close()
    # another host of the same directory answers up to 50
    c = connect(env, 'adam', host=EXP)
    try:
        got, x = form_items(form(c, EXP, first='ad*'))
        assert set(got) == jids('ada', 'adele', 'adam', 'adrian', host=EXP), got
        assert x.find(q(NS_DATA, 'title')) is None, tostr(x)
        # London: the disabled user (auth filter) and the entry without a
        # uid are not found
        got, _ = form_items(form(c, EXP, locality='London'))
        assert set(got) == jids('ada', 'adele', 'adam', host=EXP), got
        assert form_items(form(c, EXP, orgname='Ghost Corp'))[0] == {}
        assert form_items(form(c, EXP, fn='Meeting Room'))[0] == {}
    finally:
        c.close()


def test_values_that_are_not_xml_text_are_left_out(env):
    """A cn with U+FFFE (valid UTF-8, not an XML character) and a
    displayName with a control character are left out of the result, which
    stays well-formed; a line names the entry and the attribute."""
    dn = 'uid=bo,%s' % BASE
    ldap_admin(env.slapd, 'ldapadd', '\n'.join([
        'dn: ' + dn, 'objectClass: inetOrgPerson', 'uid: bo', 'cn:: ' + b64('Bo \ufffe Marker'),
        'sn: Marker', 'givenName: Bo', 'mail: bo@bom.test', 'o: Bom Corp', 'l: Utrecht',
        'displayName:: ' + b64('Bo\x07'), 'userPassword: ' + password('bo'), '']))
    try:
        c = connect(env, 'ada', host=EXP)
        try:
            got, _ = form_items(form(c, EXP, orgname='Bom Corp'))
            row = got['bo@' + EXP]
            assert row['fn'] == '' and row['nick'] == '', row
            assert row['last'] == 'Marker' and row['locality'] == 'Utrecht', row
            assert legacy_items(legacy(c, EXP, last='Marker')) == {
                'bo@' + EXP: {'first': 'Bo', 'last': 'Marker', 'nick': '', 'email': 'bo@bom.test'}}
        finally:
            c.close()
    finally:
        ldap_admin(env.slapd, 'ldapdelete', dn + '\n')
    log = env.log()
    assert 'ldap: %s: a value of cn is left out' % dn in log, log[-3000:]
    assert 'ldap: %s: a value of displayName is left out' % dn in log, log[-3000:]


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize('value', ['*)(uid=*', '*)(|(uid=*', 'a)(uid=*', '\\2a', '*)(objectClass=*',
                                   'ada)(|(uid=*', '*)(uid=*))(|(uid=*', '\\', '(', ')*'])
def test_filter_specials_find_nothing(env, value):
    c = connect(env, 'ada', host=EXP)
    try:
        for field in ('user', 'fn', 'email', 'last', 'locality'):
            got, _ = form_items(form(c, EXP, **{field: value}))
            assert got == {}, (field, value, got)
        assert legacy_items(legacy(c, EXP, first=value, last='Smith')) == {}
        # and the directory still answers
        assert set(legacy_items(legacy(c, EXP, last='Turing'))) == jids('alan', host=EXP)
    finally:
        c.close()
    assert 'the directory search failed' not in env.log()


# ---- avatars -------------------------------------------------------------------------

def photo_of(p):
    """None without an update element, 'not-ready' for one without <photo/>,
    '' for an empty photo, else the hash."""
    xs = p.findall(q(NS_UPDATE, 'x'))
    assert len(xs) <= 1, tostr(p)
    if not xs:
        return None
    ph = xs[0].find(q(NS_UPDATE, 'photo'))
    if ph is None:
        return 'not-ready'
    return ph.text or ''


def presences_from(c, jid):
    return [e for e in c.received if e.tag == q(NS_CLIENT, 'presence') and e.get('from') == jid
            and e.get('type') is None]


def wait_photo(c, jid, want, timeout=10):
    return c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('from') == jid and
                      e.get('type') is None and photo_of(e) == want, timeout=timeout,
                      what='presence of %s with photo %r' % (jid, want))


def watch_own_presence(env, uid):
    """Two sessions of uid: the first sees the presence the second sends
    (with the client's own, wrong, update element)."""
    watcher = connect(env, uid, presence=True)
    c = connect(env, uid)
    c.send("<presence><x xmlns='%s'><photo>0000</photo></x></presence>" % NS_UPDATE)
    return watcher, c


def check_avatar(env, uid, want):
    watcher, c = watch_own_presence(env, uid)
    try:
        wait_photo(watcher, c.jid, want)
        # before the hash is known only XEP-0153's "not ready" goes out;
        # the client's own element never does
        for p in presences_from(watcher, c.jid):
            assert photo_of(p) in ('not-ready', want), tostr(p)
    finally:
        c.close()
        watcher.close()


def test_avatar_hash_of_jpeg_photo(env):
    check_avatar(env, 'ada', hashlib.sha1(ADA_PHOTO).hexdigest())


def test_avatar_hash_of_png_photo_and_of_none(env):
    check_avatar(env, 'grace', hashlib.sha1(GRACE_PNG).hexdigest())
    # a user without a photo: an empty <photo/>
    check_avatar(env, 'alan', '')


def test_vcard_has_locality_and_photo(env):
    c = connect(env, 'alan')
    try:
        r = c.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to='ada@' + DIR)
        assert r.get('type') == 'result', tostr(r)
        vc = r.find(q(NS_VCARD, 'vCard'))
        assert vc.findtext('%s/%s' % (q(NS_VCARD, 'ADR'), q(NS_VCARD, 'LOCALITY'))) == 'London'
        photo = vc.find(q(NS_VCARD, 'PHOTO'))
        assert base64.b64decode(photo.findtext(q(NS_VCARD, 'BINVAL'))) == ADA_PHOTO
    finally:
        c.close()


def test_avatar_follows_the_directory(env):
    """A new jpegPhoto in the directory: when the cached vCard (2 s) is read
    again, the user's presence goes out with the new hash; the photo
    removed, with an empty one."""
    old, new = hashlib.sha1(ADA_PHOTO).hexdigest(), hashlib.sha1(ADA_PHOTO2).hexdigest()
    watcher, c = watch_own_presence(env, 'ada')
    other = connect(env, 'alan')
    try:
        wait_photo(watcher, c.jid, old)
        ldap_admin(env.slapd, 'ldapmodify',
                   'dn: uid=ada,%s\nchangetype: modify\nreplace: jpegPhoto\njpegPhoto:: %s\n'
                   % (BASE, base64.b64encode(ADA_PHOTO2).decode()))
        time.sleep(2.5)
        r = other.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to='ada@' + DIR)
        assert r.get('type') == 'result', tostr(r)
        wait_photo(watcher, c.jid, new)
        # the photo removed: an empty <photo/>
        ldap_admin(env.slapd, 'ldapmodify',
                   'dn: uid=ada,%s\nchangetype: modify\ndelete: jpegPhoto\n' % BASE)
        time.sleep(2.5)
        r = other.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to='ada@' + DIR)
        assert r.get('type') == 'result', tostr(r)
        assert r.find(q(NS_VCARD, 'vCard')).find(q(NS_VCARD, 'PHOTO')) is None, tostr(r)
        wait_photo(watcher, c.jid, '')
    finally:
        ldap_admin(env.slapd, 'ldapmodify',
                   'dn: uid=ada,%s\nchangetype: modify\nreplace: jpegPhoto\njpegPhoto:: %s\n'
                   % (BASE, base64.b64encode(ADA_PHOTO).decode()))
        other.close()
        c.close()
        watcher.close()


# ---- outage ------------------------------------------------------------------------

def test_directory_down_is_a_temporary_error(env):
    s = env.slapd
    c = connect(env, 'adele', presence=True)
    try:
        assert set(legacy_items(legacy(c, last='Goldberg'))) == jids('adele')
        s.stop()
        try:
            r = legacy(c, last='Goldberg')
            assert r.get('type') == 'error', tostr(r)
            err = r.find(q(NS_CLIENT, 'error'))
            assert err is not None and err.get('type') == 'wait', tostr(r)
            assert err.find(q(NS_STANZA_ERR, 'resource-constraint')) is not None, tostr(r)
            # the session goes on
            r = c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=DIR)
            assert r.get('type') == 'result', tostr(r)
            # users of another host do not notice
            alice = RawClient(env.port, timeout=10)
            try:
                alice.login('alice', env.password('alice'))
                r = alice.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=parleytest.HOST)
                assert r.get('type') == 'result', tostr(r)
            finally:
                alice.close()
        finally:
            s.restart()
        deadline = time.monotonic() + 20
        while True:
            r = legacy(c, last='Goldberg')
            if r.get('type') == 'result' or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert set(legacy_items(r)) == jids('adele')
    finally:
        c.close()


# ---- configuration check ---------------------------------------------------------

@pytest.mark.parametrize('modules,auth_filter,key,words', [
    ("vcard: { source: ldap }\n      vjud: { search_all: false }", None,
     'modules.vjud.search_all', 'read-only'),
    ("vcard: { source: ldap }\n      vjud: { source: sql }", None,
     'modules.vjud.source', 'come from LDAP'),
    ("vjud: { source: ldap }", None, 'modules.vjud.source', 'not read from LDAP'),
    ("vcard: { source: ldap }\n      vjud: {}", '(memberOf=cn=%u,ou=groups)',
     'auth.ldap.filter', '%u'),
])
def test_config_check_refuses(tmp_path_factory, modules, auth_filter, key, words):
    filt = auth_filter or '(objectClass=inetOrgPerson)'
    hosts = f"""\
  bad.local:
    auth: {{ methods: [ldap], ldap: {ldap_block('ldap://127.0.0.1:9', filt)} }}
    modules:
      {modules}
"""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-dir-check'), extra_hosts=hosts)
    (srv.dir / 'ldap-service.pw').write_text('parley-secret\n')
    r = subprocess.run([srv.parleyd, '-t', '-c', str(srv.config)], capture_output=True, text=True,
                       timeout=30, env=srv.env, cwd=str(srv.dir))
    assert r.returncode != 0, r.stdout + r.stderr
    assert key in r.stderr and words in r.stderr, r.stderr
    assert '%s:' % srv.config in r.stderr, r.stderr      # file:line:column
    # the same host with a search that can run passes the check
    ok = hosts.replace(modules, "vcard: { source: ldap }\n      vjud: {}").replace(
        '%u', 'x')
    srv.config.write_text(srv.config.read_text().replace(hosts, ok))
    r = subprocess.run([srv.parleyd, '-t', '-c', str(srv.config)], capture_output=True, text=True,
                       timeout=30, env=srv.env, cwd=str(srv.dir))
    assert r.returncode == 0, r.stderr
