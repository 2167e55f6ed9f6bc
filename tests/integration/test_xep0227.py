"""XEP-0227 export and import and rename-domain (parleyctl, parleyd
stopped): an export holds every user with SCRAM credentials, roster, vCard,
offline messages, private XML, privacy lists and block list; importing it
into a fresh store and exporting again gives the same bytes, and the
imported users log in with their passwords and get their offline messages;
files from other servers (plain passwords) import; bad files and unknown
hosts are refused with nothing stored; rename-domain moves a host's users
and rewrites the JIDs pointing at them."""
import shutil
import sqlite3
import xml.etree.ElementTree as ET

import pytest

import parleytest
from parleytest import HOST, OTHER, NS_CLIENT, RawClient, q, tostr, unique
from test_offline import send_chat, sync, wait_rows

PIE = 'urn:xmpp:pie:0'
NEW = 'renamed.local'


def login(srv, user, host=HOST, password=None):
    c = RawClient(srv.port, host=host)
    c.login(user, password if password is not None else srv.password(user, host),
            resource=unique('x-'), presence=False)
    return c


def iq_ok(c, typ, payload, to=None):
    r = c.iq(typ, payload, to=to)
    assert r.get('type') == 'result', tostr(r)
    return r


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
    a, b = login(s, 'alice'), login(s, 'bob')
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
    c = login(s, 'carol')
    try:
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
    c = login(s, 'romeo', password='Juliet is the sun')
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
    d = login(s, 'dave', host=OTHER)
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
    c = login(s, 'dave', host=NEW, password=s.password('dave', OTHER))
    try:
        r = c.iq('get', "<query xmlns='jabber:iq:roster'/>")
        assert [i.get('jid') for i in r.findall('.//' + q('jabber:iq:roster', 'item'))] == \
            ['alice@%s' % HOST], tostr(r)
    finally:
        c.close()
