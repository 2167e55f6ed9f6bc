"""XEP-0227 export and import and rename-domain (parleyctl, parleyd
stopped): an export holds every user with SCRAM credentials, roster, vCard,
offline messages, private XML, privacy lists and block list; importing it
into a fresh store and exporting again gives the same bytes, and the
imported users log in with their passwords and get their offline messages;
files from other servers (plain passwords) import; bad files and unknown
hosts are refused with nothing stored; rename-domain moves a host's users
and rewrites the JIDs pointing at them."""
import base64
import hashlib
import hmac
import shutil
import sqlite3
import xml.etree.ElementTree as ET

import pytest

import parleytest
from parleytest import (HOST, OTHER, NS_BLOCKING, NS_CLIENT, NS_PRIVACY, NS_ROSTER, iq_ok, items_of, q,
                        raw_login, tostr)
from test_offline import send_chat, sync, wait_rows

PIE = 'urn:xmpp:pie:0'
NS_NICK = 'http://jabber.org/protocol/nick'
XML_LANG = '{http://www.w3.org/XML/1998/namespace}lang'
NEW = 'renamed.local'


def ctl_ok(srv, *args):
    r = srv.ctl(*args)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


@pytest.fixture
def srv(tmp_path_factory):
    s = parleytest.Parleyd(tmp_path_factory.mktemp('parley-pie'))
    text = s.config.read_text()
    s.config.write_text(text.replace('  %s: {}\n' % OTHER, '  %s: {}\n  %s: {}\n' % (OTHER, NEW)))
    s.start()
    s.create_users()
    yield s
    s.finish()


def populate(s):
    """alice and bob (test.local) subscribe to each other; alice has a
    vCard, private XML, a privacy list (default) and a block list; carol
    gets two offline messages; dave (other.local) is in alice's roster
    and privacy list and blocked by bob."""
    a, b = raw_login(s, 'alice'), raw_login(s, 'bob')
    try:
        for c in (a, b):
            c.send('<presence/>')
        a.send("<presence to='bob@%s' type='subscribe'/>" % HOST)
        b.wait_for(lambda e: e.get('type') == 'subscribe', what='subscribe')
        b.send("<presence to='alice@%s' type='subscribed'/>" % HOST)
        iq_ok(a, 'set', "<query xmlns='jabber:iq:roster'><item jid='dave@%s' name='Dave'>"
              "<group>Work</group><group>Friends</group></item></query>" % OTHER)
        iq_ok(a, 'set', "<vCard xmlns='vcard-temp'><FN>Alice A.</FN><NICKNAME>al</NICKNAME>"
              "</vCard>")
        iq_ok(a, 'set', "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>"
              "<colour>green</colour></prefs></query>")
        iq_ok(a, 'set', "<query xmlns='jabber:iq:privacy'><list name='work'>"
              "<item type='jid' value='dave@%s' action='allow' order='1'/>"
              "<item type='subscription' value='none' action='deny' order='2'><message/>"
              "</item></list></query>" % OTHER)
        iq_ok(a, 'set', "<query xmlns='jabber:iq:privacy'><default name='work'/></query>")
        iq_ok(a, 'set', "<block xmlns='urn:xmpp:blocking'><item jid='spam.example'/></block>")
        iq_ok(b, 'set', "<block xmlns='urn:xmpp:blocking'><item jid='dave@%s'/></block>" % OTHER)
        send_chat(a, 'carol@%s' % HOST, 'first &lt;b&gt;offline&lt;/b&gt; &amp; one')
        sync(a)
        send_chat(b, 'carol@%s' % HOST, 'second')
        sync(b)
        wait_rows(s, 'carol', 2)
    finally:
        a.close()
        b.close()


def fresh_config(s, name):
    """A copy of s's configuration with an empty store of its own."""
    path = s.dir / name
    text = s.config.read_text().replace('path: parley.db', 'path: %s.db' % name)
    path.write_text(text)
    return path


def users_of(doc, host):
    h = [e for e in doc.findall(q(PIE, 'host')) if e.get('jid') == host]
    assert len(h) == 1, host
    return {u.get('name'): u for u in h[0].findall(q(PIE, 'user'))}


def test_export_import_round_trip(srv):
    s = srv
    populate(s)
    # a default privacy list that denies a JID everything, and no block
    # list: it comes back as a privacy list (not as an ejabberd block list)
    c = raw_login(s, 'carol')
    try:
        iq_ok(c, 'set', "<query xmlns='jabber:iq:privacy'><list name='quiet'>"
              "<item type='jid' value='dave@%s' action='deny' order='1'/></list></query>" % OTHER)
        iq_ok(c, 'set', "<query xmlns='jabber:iq:privacy'><default name='quiet'/></query>")
        # bob is in carol's roster (a JID alone) and then asks her
        iq_ok(c, 'set', "<query xmlns='jabber:iq:roster'><item jid='bob@%s'/></query>" % HOST)
    finally:
        c.close()
    # a request waiting for carol, with what it said, from erin, whom
    # carol does not have in the roster, and one from bob
    e, b = raw_login(s, 'erin'), raw_login(s, 'bob')
    try:
        e.send("<presence to='carol@%s' type='subscribe'><status>Hi, I'm Erin</status>"
               "<status xml:lang='de'>Hallo, ich bin Erin</status><nick xmlns='%s'>Erin</nick>"
               "</presence>" % (HOST, NS_NICK))
        b.send("<presence to='carol@%s' type='subscribe'/>" % HOST)
        for c in (e, b):
            iq_ok(c, 'get', "<query xmlns='jabber:iq:roster'/>")   # once carol's roster has it
    finally:
        e.close()
        b.close()
    s.stop()
    out = s.dir / 'export.xml'
    r = ctl_ok(s, 'export-xep0227', out)
    assert 'exported 5 users' in r.stdout, r.stdout
    assert (out.stat().st_mode & 0o777) == 0o600
    doc = ET.parse(out).getroot()
    assert doc.tag == q(PIE, 'server-data')
    users = users_of(doc, HOST)
    assert sorted(users) == ['alice', 'bob', 'carol', 'erin']
    assert sorted(users_of(doc, OTHER)) == ['dave']
    alice = users['alice']
    mechs = sorted(c.get('mechanism') for c in alice.findall(q(PIE + '#scram', 'scram-credentials')))
    assert mechs == ['SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-512'], tostr(alice)
    assert alice.get('password') is None          # only SCRAM is kept
    items = {i.get('jid'): i for i in alice.iter(q('jabber:iq:roster', 'item'))}
    assert items['bob@%s' % HOST].get('subscription') == 'to', tostr(alice)
    assert [g.text for g in items['dave@%s' % OTHER].findall(q('jabber:iq:roster', 'group'))] == \
        ['Friends', 'Work']
    assert alice.find(q('vcard-temp', 'vCard')).findtext(q('vcard-temp', 'FN')) == 'Alice A.'
    assert alice.find('.//{urn:example:prefs}colour').text == 'green'
    pq = alice.find(q('jabber:iq:privacy', 'query'))
    assert pq.find(q('jabber:iq:privacy', 'default')).get('name') == 'work'
    assert len(pq.findall('.//' + q('jabber:iq:privacy', 'item'))) == 2
    assert [i.get('jid') for i in alice.iter(q('urn:xmpp:blocking', 'item'))] == ['spam.example']
    assert users['carol'].find(q('urn:xmpp:blocking', 'blocklist')) is not None, tostr(users['carol'])
    reqs = users['carol'].findall(q(NS_CLIENT, 'presence'))
    assert [(p.get('from'), p.get('type')) for p in reqs] == [('bob@%s' % HOST, 'subscribe'),
                                                              ('erin@%s' % HOST, 'subscribe')], \
        tostr(users['carol'])
    assert [(st.get(XML_LANG), st.text) for st in reqs[1].findall(q(NS_CLIENT, 'status'))] == \
        [(None, "Hi, I'm Erin"), ('de', 'Hallo, ich bin Erin')], tostr(reqs[1])
    assert reqs[1].findtext(q(NS_NICK, 'nick')) == 'Erin', tostr(reqs[1])
    # bob, whom carol added, is a roster item too; erin's request alone is not
    assert [i.get('jid') for i in users['carol'].iter(q(NS_ROSTER, 'item'))] == ['bob@%s' % HOST], \
        tostr(users['carol'])
    msgs = users['carol'].findall('%s/%s' % (q(PIE, 'offline-messages'), q(NS_CLIENT, 'message')))
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in msgs] == ['first <b>offline</b> & one',
                                                                'second']

    # into a fresh store, and out again: the same bytes
    cfg2 = fresh_config(s, 'second')
    r = parleyctl(s, cfg2, 'import-xep0227', out)
    assert r.returncode == 0, r.stderr
    assert 'imported 5 users, skipped 0' in r.stdout, r.stdout
    out2 = s.dir / 'export2.xml'
    r = parleyctl(s, cfg2, 'export-xep0227', out2)
    assert r.returncode == 0, r.stderr
    assert out2.read_bytes() == out.read_bytes()
    # importing again skips everybody and changes nothing
    r = parleyctl(s, cfg2, 'import-xep0227', out)
    assert r.returncode == 0 and 'imported 0 users, skipped 5' in r.stdout, r.stdout

    # the imported store serves: carol logs in with her password and gets her messages
    shutil.copy(s.dir / 'second.db', s.dir / 'parley.db')
    for extra in ('-wal', '-shm'):
        (s.dir / ('parley.db' + extra)).unlink(missing_ok=True)
        if (s.dir / ('second.db' + extra)).exists():
            shutil.copy(s.dir / ('second.db' + extra), s.dir / ('parley.db' + extra))
    s.start()
    c = raw_login(s, 'carol')
    try:
        roster = iq_ok(c, 'get', "<query xmlns='jabber:iq:roster'/>")
        assert [i.get('jid') for i in items_of(roster, NS_ROSTER)] == ['bob@%s' % HOST], tostr(roster)
        c.send('<presence/>')
        got = [c.wait_message(timeout=5) for _ in range(2)]
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == ['first <b>offline</b> & one',
                                                                   'second']
    finally:
        c.close()


def parleyctl(s, cfg, *args):
    import subprocess
    return subprocess.run([s.parleyctl, '-c', str(cfg)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=60, cwd=str(s.dir), env=s.env)


def test_export_per_host_directory_and_refusals(srv):
    s = srv
    # refused while parleyd runs
    r = s.ctl('export-xep0227', s.dir / 'x.xml')
    assert r.returncode == 5, (r.returncode, r.stderr)
    s.stop()
    d = s.dir / 'dump'
    d.mkdir()
    ctl_ok(s, 'export-xep0227', d)
    assert sorted(p.name for p in d.iterdir()) == sorted(['%s.xml' % h for h in (HOST, OTHER, NEW)])
    one = s.dir / 'other.xml'
    ctl_ok(s, 'export-xep0227', '--host', OTHER, one)
    doc = ET.parse(one).getroot()
    assert [h.get('jid') for h in doc.findall(q(PIE, 'host'))] == [OTHER]
    r = s.ctl('export-xep0227', '--host', 'nowhere.example', s.dir / 'n.xml')
    assert r.returncode == 1 and 'not in' in r.stderr, r.stderr
    # a directory of files imports too (a fresh store)
    cfg2 = fresh_config(s, 'fromdir')
    r = parleyctl(s, cfg2, 'import-xep0227', d)
    assert r.returncode == 0 and 'imported 5 users' in r.stdout, (r.stdout, r.stderr)
    # bad files: nothing stored
    bad = s.dir / 'bad.xml'
    bad.write_text("<server-data xmlns='%s'><host jid='%s'><user name='zed' password='pw'/>"
                   "</host><host jid='unknown.example'/></server-data>" % (PIE, HOST))
    cfg3 = fresh_config(s, 'third')
    r = parleyctl(s, cfg3, 'import-xep0227', bad)
    assert r.returncode == 1 and 'unknown.example' in r.stderr, r.stderr
    bad.write_text("<server-data xmlns='%s'><host jid='%s'><user name='zed'" % (PIE, HOST))
    r = parleyctl(s, cfg3, 'import-xep0227', bad)
    assert r.returncode == 1 and 'not a XEP-0227 document' in r.stderr, r.stderr
    # the store was never even opened
    assert not (s.dir / 'third.db').exists()
    # a valid file with one valid user into that store, then the refused
    # one again: the first user stays, nothing of the bad file is added
    good = s.dir / 'good.xml'
    good.write_text("<server-data xmlns='%s'><host jid='%s'><user name='zed' password='pw'/>"
                    "</host></server-data>" % (PIE, HOST))
    assert parleyctl(s, cfg3, 'import-xep0227', good).returncode == 0
    bad.write_text("<server-data xmlns='%s'><host jid='%s'><user name='yan' password='pw'/>"
                   "</host><host jid='unknown.example'/></server-data>" % (PIE, HOST))
    assert parleyctl(s, cfg3, 'import-xep0227', bad).returncode == 1
    db = sqlite3.connect(str(s.dir / 'third.db'))
    try:
        assert [r[0] for r in db.execute('SELECT username FROM users')] == ['zed']
    finally:
        db.close()
    s.start()


# The example of doc/admin-guide.md: what ejabberd's and Prosody's exporters
# write for an account with a plain password.
FOREIGN = """<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='%s'>
    <user name='Romeo' password='Juliet is the sun'>
      <query xmlns='jabber:iq:roster'>
        <item jid='juliet@%s' name='Juliet' subscription='both'><group>Capulets</group></item>
      </query>
      <vCard xmlns='vcard-temp'><FN>Romeo Montague</FN></vCard>
      <offline-messages>
        <message xmlns='jabber:client' from='juliet@%s/balcony' to='romeo@%s' type='chat'>
          <body>Wherefore art thou?</body>
          <delay xmlns='urn:xmpp:delay' from='%s' stamp='2024-01-01T10:00:00Z'/>
        </message>
      </offline-messages>
    </user>
  </host>
</server-data>
"""


def test_import_foreign_file_with_plain_password(srv):
    s = srv
    s.stop()
    f = s.dir / 'foreign.xml'
    f.write_text(FOREIGN % (HOST, HOST, HOST, HOST, HOST))
    ctl_ok(s, 'import-xep0227', f)
    s.start()
    c = raw_login(s, 'romeo', password='Juliet is the sun')
    try:
        r = c.iq('get', "<query xmlns='jabber:iq:roster'/>")
        items = r.findall('.//' + q('jabber:iq:roster', 'item'))
        assert [(i.get('jid'), i.get('subscription')) for i in items] == \
            [('juliet@%s' % HOST, 'both')], tostr(r)
        c.send('<presence/>')
        m = c.wait_message('Wherefore art thou?', timeout=5)
        assert m.find('{urn:xmpp:delay}delay').get('stamp') == '2024-01-01T10:00:00Z'
    finally:
        c.close()
    # the password is not kept in clear
    db = sqlite3.connect(str(s.dir / 'parley.db'))
    try:
        assert db.execute("SELECT password FROM users WHERE username = 'romeo'").fetchone() == \
            (None,)
    finally:
        db.close()


def test_rename_domain(srv):
    s = srv
    # dave@other.local: in alice's roster, blocked by bob, allowed in a list
    populate(s)
    d = raw_login(s, 'dave', host=OTHER)
    try:
        iq_ok(d, 'set', "<query xmlns='jabber:iq:roster'><item jid='alice@%s'/></query>" % HOST)
        iq_ok(d, 'set', "<vCard xmlns='vcard-temp'><FN>Dave</FN></vCard>")
    finally:
        d.close()
    s.stop()
    r = ctl_ok(s, 'rename-domain', OTHER, NEW)
    assert 'moved 1 user' in r.stdout, r.stdout
    assert s.db_rows('users', 'dave', OTHER) == 0
    assert s.db_rows('users', 'dave', NEW) == 1
    assert s.db_rows('vcards', 'dave', NEW) == 1
    db = sqlite3.connect(str(s.dir / 'parley.db'))
    try:
        jids = {r[0] for r in db.execute("SELECT jid FROM roster_items WHERE username = 'alice'")}
        assert 'dave@%s' % NEW in jids and 'dave@%s' % OTHER not in jids, jids
        blocked = {r[0] for r in db.execute("SELECT jid FROM blocklist WHERE username = 'bob'")}
        assert blocked == {'dave@%s' % NEW}, blocked
        values = {r[0] for r in db.execute(
            "SELECT item_value FROM privacy_items WHERE username = 'alice' AND item_type = 'jid'")}
        assert values == {'dave@%s' % NEW}, values
    finally:
        db.close()
    # unknown hosts are refused
    r = s.ctl('rename-domain', 'nowhere.example', NEW)
    assert r.returncode == 1 and 'nowhere.example' in r.stderr, r.stderr
    s.start()
    c = raw_login(s, 'dave', host=NEW, password=s.password('dave', OTHER))
    try:
        r = c.iq('get', "<query xmlns='jabber:iq:roster'/>")
        assert [i.get('jid') for i in r.findall('.//' + q('jabber:iq:roster', 'item'))] == \
            ['alice@%s' % HOST], tostr(r)
    finally:
        c.close()


# ---- files as ejabberd and Prosody write them --------------------------------------------

# What tests/fixtures/ejabberd/make-fixtures.sh put in ejabberd 23.01 before
# its export_piefxis: test.local keeps SCRAM-SHA-1 (written base64 twice),
# other.local plain passwords.
EJ_PASSWORDS = {('alice', HOST): 'Juliet is the sun', ('bob', HOST): 'b0b secret',
                ('carol', HOST): 'carol pass', ('dave', OTHER): 'dave plain pw',
                ('erin', OTHER): 'erin plain pw'}


def ejabberd_export(dest):
    """A copy of the committed ejabberd export in dest; returns (the
    <server-data/> file, {host: host file})."""
    src = parleytest.srcdir() / 'tests' / 'fixtures' / 'ejabberd' / 'export'
    shutil.copytree(src, dest)
    main = [p for p in dest.iterdir() if '_' not in p.name]
    assert len(main) == 1, list(dest.iterdir())
    hosts = {h: [p for p in dest.iterdir() if p.name.endswith('_%s.xml' % h.replace('.', '_'))][0]
             for h in (HOST, OTHER)}
    return main[0], hosts


@pytest.fixture
def empty_srv(tmp_path_factory):
    """A server with no account, not started."""
    s = parleytest.Parleyd(tmp_path_factory.mktemp('parley-pie-in'), users={})
    yield s
    if s.running():
        s.finish()


def user_count(s, host=HOST):
    return s.db_query('SELECT COUNT(*) FROM users WHERE server_host = ?', (host,), host=host)[0][0]


def test_import_ejabberd_export(empty_srv, run, tmp_path):
    s = empty_srv
    main, hosts = ejabberd_export(tmp_path / 'ej')
    # a host file alone
    r = s.ctl('import-xep0227', hosts[OTHER])
    assert r.returncode == 0 and 'imported 2 users, skipped 0\n' in r.stdout, (r.stdout, r.stderr)
    # the <server-data/> file with its includes: the other host is there already
    r = s.ctl('import-xep0227', main)
    assert r.returncode == 0 and 'imported 3 users, skipped 2\n' in r.stdout, (r.stdout, r.stderr)
    # the folder: every file read once (the includes are not read twice)
    r = s.ctl('import-xep0227', tmp_path / 'ej')
    assert r.returncode == 0 and 'imported 0 users, skipped 5\n' in r.stdout, (r.stdout, r.stderr)
    assert r.stdout.count('skipped:') == 5, r.stdout
    assert user_count(s, HOST) == 3 and user_count(s, OTHER) == 2
    s.passwords = dict(EJ_PASSWORDS)
    s.start()

    a = raw_login(s, 'alice')
    try:
        # the pending request from erin comes with the initial presence
        a.send('<presence/>')
        p = a.wait_for(lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe',
                       timeout=10, what='the pending subscription request')
        assert p.get('from') == 'erin@%s' % OTHER, tostr(p)
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:roster'/>")
        roster = {i.get('jid'): i for i in items_of(r, NS_ROSTER)}
        assert sorted(roster) == ['bob@%s' % HOST, 'dave@%s' % OTHER], tostr(r)
        assert roster['bob@%s' % HOST].get('subscription') == 'both'
        assert [g.text for g in roster['bob@%s' % HOST]] == ['Friends']
        assert roster['dave@%s' % OTHER].get('subscription') == 'to'
        r = iq_ok(a, 'get', "<vCard xmlns='vcard-temp'/>")
        assert r.findtext('.//' + q('vcard-temp', 'FN')) == 'Alice A.'
        assert r.findtext('.//' + q('vcard-temp', 'BINVAL')).startswith('iVBORw0KGgo'), tostr(r)
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/>"
                  "</query>")
        assert r.findtext('.//{urn:example:prefs}colour') == 'green', tostr(r)
        # the block ejabberd kept in the default privacy list is a block
        # again; the rest of the list stays a privacy list
        r = iq_ok(a, 'get', "<blocklist xmlns='urn:xmpp:blocking'/>")
        assert [i.get('jid') for i in items_of(r, NS_BLOCKING)] == ['spam.example'], tostr(r)
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:privacy'/>")
        assert [l.get('name') for l in items_of(r, NS_PRIVACY, 'list')] == ['work'], tostr(r)
        assert r.find('.//' + q(NS_PRIVACY, 'default')).get('name') == 'work'
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:privacy'><list name='work'/></query>")
        assert sorted((i.get('type'), i.get('value'), i.get('action'))
                      for i in items_of(r, NS_PRIVACY)) == \
            [('jid', 'dave@%s' % OTHER, 'allow'), ('subscription', 'none', 'deny')], tostr(r)
    finally:
        a.close()
    b = raw_login(s, 'bob')
    try:
        r = iq_ok(b, 'get', "<blocklist xmlns='urn:xmpp:blocking'/>")
        assert [i.get('jid') for i in items_of(r, NS_BLOCKING)] == ['dave@%s' % OTHER], tostr(r)
        # ejabberd's "Blocked contacts" list was only the block list
        r = iq_ok(b, 'get', "<query xmlns='jabber:iq:privacy'/>")
        assert items_of(r, NS_PRIVACY, 'list') == [], tostr(r)
    finally:
        b.close()
    c = raw_login(s, 'carol')
    try:
        c.send('<presence/>')
        got = [c.wait_message(timeout=10) for _ in range(2)]
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == ['first offline message', 'second']
    finally:
        c.close()
    # PLAIN logins above; dave with the password ejabberd kept in clear
    d = raw_login(s, 'dave', host=OTHER)
    try:
        d.send('<presence/>')
        d.wait_message('hello dave', timeout=10)
    finally:
        d.close()

    # every user logs in with the original password with SCRAM-SHA-1 too
    # (the credentials ejabberd kept; last: slixmpp accepts the pending
    # subscription request)
    async def scram_logins():
        for (user, host) in EJ_PASSWORDS:
            c = await parleytest.login(s, user, host=host, mech='SCRAM-SHA-1')
            await parleytest.logout(c)
    run(scram_logins(), timeout=90)


def scram_values(password, salt, iterations=4096, hash_name='sha1'):
    """(salt, stored key, server key) of RFC 5802, as bytes."""
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b'Client Key', hash_name).digest()
    server_key = hmac.new(salted, b'Server Key', hash_name).digest()
    return salt, hashlib.new(hash_name, client_key).digest(), server_key


def scram_el(mech, salt, stored, server, iterations=4096, encode=None):
    b64 = encode or (lambda v: base64.b64encode(v).decode())
    return ("<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='%s'>"
            "<iter-count>%d</iter-count><salt>%s</salt><server-key>%s</server-key>"
            "<stored-key>%s</stored-key></scram-credentials>"
            % (mech, iterations, b64(salt), b64(server), b64(stored)))


def test_import_prosody_files(empty_srv, run, tmp_path):
    """prosody-migrator's xep0227 store: one file per user, SCRAM-SHA-1
    values in base64 (or hex; or, from older versions, as attributes of
    <user/> in a namespace of Prosody's), pending requests as <presence/>
    in no namespace of their own, the block list as <blocklist/>."""
    s = empty_srv
    d = tmp_path / 'prosody'
    d.mkdir()
    pw = {'romeo': 'wherefore art thou', 'juliet': 'a rose by any other name',
          'mercutio': 'a plague o both your houses', 'tybalt': 'prince of cats'}
    for user in pw:
        salt, stored, server = scram_values(pw[user], ('salt-of-%s' % user).encode())
        creds = scram_el('SCRAM-SHA-1', salt, stored, server)
        attrs = ''
        if user == 'tybalt':
            creds = scram_el('SCRAM-SHA-1', salt, stored, server,
                             encode=lambda v: v.hex() if len(v) == 20 else base64.b64encode(v).decode())
        if user == 'mercutio':
            creds = ''
            attrs = (" xmlns:ns1='http://prosody.im/protocol/extended-xep0227' "
                     "ns1:iteration_count='4096' ns1:salt='%s' ns1:stored_key='%s' "
                     "ns1:server_key='%s'" % (salt.decode(), stored.hex(), server.hex()))
        extra = ''
        if user == 'romeo':
            # romeo's side of juliet's roster item (juliet's probe of
            # romeo at her login finds it: otherwise the answer is
            # 'unsubscribed', RFC 6121 §4.3.2)
            extra = ("<query xmlns='jabber:iq:roster'><item jid='juliet@%s' subscription='from' "
                     "ask='subscribe'/></query>" % HOST)
        if user == 'juliet':
            extra = ("<query xmlns='jabber:iq:roster'><item jid='romeo@%s' subscription='to'/>"
                     "</query><presence type='subscribe' from='romeo@%s'>"
                     "<status>It is the east</status><nick xmlns='%s'>Romeo</nick></presence>"
                     "<presence type='subscribe' from='nurse@%s/kitchen'/>"
                     "<blocklist xmlns='urn:xmpp:blocking'><item jid='tybalt@%s'/></blocklist>"
                     "<query xmlns='jabber:iq:privacy'><list name='Blocked contacts'>"
                     "<item type='jid' value='paris@%s' action='deny' order='0'/></list>"
                     "<default name='Blocked contacts'/></query>"
                     "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                     "<items node='urn:xmpp:bookmarks:1'/></pubsub>"
                     % (HOST, HOST, NS_NICK, HOST, HOST, HOST))
        (d / ('%s@%s.xml' % (user, HOST))).write_text(
            "<?xml version='1.0' encoding='utf-8'?><server-data xmlns='urn:xmpp:pie:0'>"
            "<host jid='%s'><user name='%s'%s>%s%s</user></host></server-data>"
            % (HOST, user, attrs, creds, extra))
    r = s.ctl('import-xep0227', d)
    assert r.returncode == 0 and 'imported 4 users, skipped 0\n' in r.stdout, (r.stdout, r.stderr)
    # PEP comes in (test_xep0227_pep.py): no note about it
    assert 'pubsub' not in r.stdout, r.stdout
    s.passwords = {(u, HOST): p for u, p in pw.items()}
    s.start()
    j = raw_login(s, 'juliet')   # PLAIN against the imported SCRAM-SHA-1 credentials
    try:
        j.send('<presence/>')
        said = {}
        for _ in range(2):
            p = j.wait_for(lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe',
                           timeout=10, what='a pending subscription request')
            said[p.get('from')] = (p.findtext(q(NS_CLIENT, 'status')), p.findtext(q(NS_NICK, 'nick')))
        # with what the request said in the file
        assert said == {'romeo@%s' % HOST: ('It is the east', 'Romeo'),
                        'nurse@%s' % HOST: (None, None)}, said
        r = iq_ok(j, 'get', "<query xmlns='jabber:iq:roster'/>")
        # the request from a contact in the roster stays on that item; the
        # other one is not shown as a roster item
        assert [(i.get('jid'), i.get('subscription')) for i in items_of(r, NS_ROSTER)] == \
            [('romeo@%s' % HOST, 'to')], tostr(r)
        # with a <blocklist/> in the file, the privacy lists stay privacy lists
        r = iq_ok(j, 'get', "<blocklist xmlns='urn:xmpp:blocking'/>")
        assert [i.get('jid') for i in items_of(r, NS_BLOCKING)] == ['tybalt@%s' % HOST], tostr(r)
        r = iq_ok(j, 'get', "<query xmlns='jabber:iq:privacy'/>")
        assert [l.get('name') for l in items_of(r, NS_PRIVACY, 'list')] == ['Blocked contacts']
    finally:
        j.close()

    async def scram_logins():
        for user in pw:
            c = await parleytest.login(s, user, mech='SCRAM-SHA-1')
            await parleytest.logout(c)
    run(scram_logins(), timeout=60)


def pie(*users, host=HOST):
    return ("<?xml version='1.0'?><server-data xmlns='urn:xmpp:pie:0'><host jid='%s'>%s</host>"
            "</server-data>" % (host, ''.join(users)))


def test_import_bad_input(empty_srv, tmp_path):
    s = empty_srv

    def imp(path):
        return s.ctl('import-xep0227', path)

    main, hosts = ejabberd_export(tmp_path / 'ej')
    # a truncated file: refused, named, nothing of it stored
    whole = hosts[HOST].read_text()
    cut = tmp_path / 'cut.xml'
    cut.write_text(whole[:len(whole) // 2])
    r = imp(cut)
    assert r.returncode == 1 and 'cut.xml: not a XEP-0227 document' in r.stderr, r.stderr
    assert 'imported 0 users' in r.stdout, r.stdout
    # a truncated host file behind an include: the other host still comes in
    hosts[HOST].write_text(whole[:len(whole) // 2])
    r = imp(main)
    assert r.returncode == 1 and 'not a XEP-0227 document' in r.stderr, r.stderr
    assert 'imported 2 users' in r.stdout, r.stdout
    assert user_count(s, HOST) == 0 and user_count(s, OTHER) == 2
    # includes outside the folder of the file: the file is refused whole
    sub = tmp_path / 'sub'
    sub.mkdir()
    (tmp_path / 'outside.xml').write_text(
        "<host xmlns='urn:xmpp:pie:0' jid='%s'><user name='mallory' password='pw'/></host>" % HOST)
    (sub / 'inside.xml').write_text(
        "<host xmlns='urn:xmpp:pie:0' jid='%s'><user name='oscar' password='pw'/></host>" % HOST)
    for href in ('../outside.xml', str(tmp_path / 'outside.xml'), 'link.xml'):
        if href == 'link.xml':
            (sub / 'link.xml').symlink_to(tmp_path / 'outside.xml')
        f = sub / 'server.xml'
        f.write_text("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>"
                     "<xi:include href='inside.xml'/><xi:include href='%s'/></server-data>" % href)
        r = imp(f)
        assert r.returncode == 1 and 'points outside the folder' in r.stderr, (href, r.stderr)
        assert href in r.stderr, r.stderr
        assert user_count(s, HOST) == 0
    # an included file that includes again: not followed
    (sub / 'again.xml').write_text(
        "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>"
        "<xi:include href='inside.xml'/></server-data>")
    f.write_text("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>"
                 "<xi:include href='again.xml'/></server-data>")
    r = imp(f)
    assert r.returncode == 1 and 'includes others (not followed)' in r.stderr, r.stderr
    assert user_count(s, HOST) == 0
    # a billion laughs: the DTD is refused, quickly
    lol = tmp_path / 'lol.xml'
    ents = ''.join("<!ENTITY l%d '%s'>" % (i, ('&l%d;' % (i - 1)) * 10) for i in range(1, 10))
    lol.write_text("<?xml version='1.0'?><!DOCTYPE server-data [<!ENTITY l0 'lol'>%s]>"
                   "<server-data xmlns='urn:xmpp:pie:0'><host jid='%s'><user name='lol' "
                   "password='&l9;'/></host></server-data>" % (ents, HOST))
    r = imp(lol)
    assert r.returncode == 1 and 'lol.xml: not accepted: it has a DTD' in r.stderr, r.stderr
    # (and one the parser meets first, after a comment: refused by the parser)
    lol.write_text(lol.read_text().replace('<!DOCTYPE', '<!-- x --><!DOCTYPE'))
    r = imp(lol)
    assert r.returncode == 1 and 'lol.xml: not a XEP-0227 document' in r.stderr, r.stderr
    # a user twice: the first comes in, the second is reported
    dup = tmp_path / 'dup.xml'
    dup.write_text(pie("<user name='zed' password='pw1'/>", "<user name='yan' password='pw'/>",
                       "<user name='Zed' password='pw2'/>"))
    r = imp(dup)
    assert r.returncode == 1 and 'zed@%s: appears more than once' % HOST in r.stderr, r.stderr
    assert 'imported 2 users, skipped 0, 1 failure' in r.stdout, r.stdout
    # SCRAM values of the wrong length: that user is reported (JID, value,
    # lengths), the others are imported
    salt, stored, server = scram_values('pw', b'0123456789abcdef')
    _, stored256, server256 = scram_values('pw', salt, hash_name='sha256')
    twice = lambda v: base64.b64encode(base64.b64encode(v)).decode()
    bad = tmp_path / 'scram.xml'
    bad.write_text(pie(
        "<user name='short'>%s</user>" % scram_el('SCRAM-SHA-1', salt, stored[:15], server),
        "<user name='short2'>%s</user>" % scram_el('SCRAM-SHA-256', salt, stored256,
                                                  server256[:22], encode=twice),
        "<user name='fine'>%s</user>" % scram_el('SCRAM-SHA-1', salt, stored, server, encode=twice),
        "<user name='plain' password='pw'/>"))
    r = imp(bad)
    assert r.returncode == 1, r.stderr
    assert 'short@%s: SCRAM-SHA-1 stored-key: 15 bytes after decoding, expected 20' % HOST \
        in r.stderr, r.stderr
    assert 'short2@%s: SCRAM-SHA-256 server-key: 22 bytes after decoding, expected 32' % HOST \
        in r.stderr, r.stderr
    assert 'imported 2 users, skipped 0, 2 failures' in r.stdout, r.stdout
    assert sorted(u for (u,) in s.db_query('SELECT username FROM users WHERE server_host = ?',
                                           (HOST,))) == ['fine', 'plain', 'yan', 'zed']
    # nothing imported from a file that has users is a failure; a file
    # without any user too
    r = imp(bad)
    assert r.returncode == 1 and 'imported 0 users, skipped 2, 2 failures' in r.stdout, r.stdout
    none = tmp_path / 'none.xml'
    none.write_text(pie(''))
    r = imp(none)
    assert r.returncode == 1 and 'no <user/> in it' in r.stderr, r.stderr
    # the users imported above log in
    s.start()
    raw_login(s, 'fine', password='pw').close()
    raw_login(s, 'zed', password='pw1').close()
