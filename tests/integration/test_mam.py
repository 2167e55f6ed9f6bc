"""Message archives (XEP-0313 urn:xmpp:mam:2) with stanza ids (XEP-0359):
what is archived (both sides of a chat, offline messages, not what a hint
or the preferences exclude), the stanza-id on delivered messages, queries
with the form's filters and RSM paging over a large archive, preferences,
metadata, bad input, and the archive of a MUC room.

Each case uses fresh accounts, so every archive starts empty."""
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, NS_DISCO_INFO, RawClient, q, stanza_error, tostr, unique

NS_MAM = 'urn:xmpp:mam:2'
NS_SID = 'urn:xmpp:sid:0'
NS_RSM = 'http://jabber.org/protocol/rsm'
NS_FORWARD = 'urn:xmpp:forward:0'
NS_DELAY = 'urn:xmpp:delay'
NS_XDATA = 'jabber:x:data'
NS_HINTS = 'urn:xmpp:hints'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
NS_ROSTER = 'jabber:iq:roster'
FULLTEXT = '{urn:xmpp:fulltext:0}fulltext'


# ---- helpers ----------------------------------------------------------------

def new_user(srv, prefix='mam'):
    user = unique(prefix)
    srv.register(user, HOST, 'mam-secret')
    return user


def login(srv, user, presence=True, resource=None):
    c = RawClient(srv.port, timeout=20)
    c.login(user, 'mam-secret', resource=resource or unique('r'), presence=presence)
    c.other = []
    return c


def jid(user):
    return '%s@%s' % (user, HOST)


def sync(c, timeout=None):
    el = c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST, timeout=timeout)
    assert el.get('type') == 'result', tostr(el)


def chat(c, to, body, extra='', typ='chat'):
    c.send("<message to='%s' type='%s' id='%s'><body>%s</body>%s</message>"
           % (to, typ, unique('m'), body, extra))


def wait_bodies(c, *bodies):
    """The messages with these bodies, in whatever order they come."""
    got = {}
    while len(got) < len(bodies):
        el = c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message')
                        and e.findtext(q(NS_CLIENT, 'body')) in bodies, what='messages %r' % (bodies,))
        got[el.findtext(q(NS_CLIENT, 'body'))] = el
    return [got[b] for b in bodies]


def field_xml(var, value):
    values = value if isinstance(value, (list, tuple)) else [value]
    return "<field var='%s'>%s</field>" % (var, ''.join('<value>%s</value>' % v for v in values))


def query_xml(form=None, rsm=None, queryid=None, flip=False):
    x = ''
    if form is not None:
        x = "<x xmlns='%s' type='submit'>%s%s</x>" % (
            NS_XDATA, field_xml('FORM_TYPE', NS_MAM), ''.join(field_xml(k, v) for k, v in form))
    s = ''
    if rsm is not None:
        s = "<set xmlns='%s'>%s</set>" % (NS_RSM, ''.join(
            '<%s/>' % k if v is None else '<%s>%s</%s>' % (k, v, k) for k, v in rsm))
    qid = " queryid='%s'" % queryid if queryid else ''
    fp = '<flip-page/>' if flip else ''
    return "<query xmlns='%s'%s>%s%s%s</query>" % (NS_MAM, qid, x, s, fp)


class Page:
    def __init__(self, results, answer):
        self.results = results
        self.answer = answer

    @property
    def ok(self):
        return self.answer.get('type') == 'result'

    @property
    def fin(self):
        return self.answer.find(q(NS_MAM, 'fin'))

    @property
    def complete(self):
        return self.fin.get('complete') in ('true', '1')

    @property
    def ids(self):
        return [r.find(q(NS_MAM, 'result')).get('id') for r in self.results]

    @property
    def bodies(self):
        return [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in self.results]

    def rsm(self, what):
        return self.fin.findtext('%s/%s' % (q(NS_RSM, 'set'), q(NS_RSM, what)))


def forwarded(res_msg):
    return res_msg.find('%s/%s/%s' % (q(NS_MAM, 'result'), q(NS_FORWARD, 'forwarded'), q(NS_CLIENT, 'message')))


def query(c, to=None, form=None, rsm=None, timeout=30, flip=False):
    """One query: the result messages (in the order received) and the iq
    answer; nothing of the query may come after the answer."""
    iq_id = unique('mq')
    qid = unique('qid')
    to_attr = " to='%s'" % to if to else ''
    c.send("<iq type='set' id='%s'%s>%s</iq>" % (iq_id, to_attr, query_xml(form, rsm, qid, flip)))
    results = []
    deadline = time.monotonic() + timeout
    while True:
        el = c.next(max(0.1, deadline - time.monotonic()))
        assert el is not None, 'stream closed; got %d results' % len(results)
        res = el.find(q(NS_MAM, 'result'))
        if el.tag == q(NS_CLIENT, 'message') and res is not None and res.get('queryid') == qid:
            results.append(el)
        elif el.tag == q(NS_CLIENT, 'iq') and el.get('id') == iq_id:
            return Page(results, el)
        else:
            c.other.append(el)


def archive(c, to=None, form=None, page=100):
    """Every message of the archive (with the form's filters), paging
    forwards; checks that only the last page says complete."""
    out = []
    after = None
    for _ in range(100000):
        rsm = [('max', page)] + ([('after', after)] if after else [])
        p = query(c, to, form, rsm)
        assert p.ok, tostr(p.answer)
        out.extend(p.results)
        if p.complete:
            return out
        assert p.results, 'an incomplete empty page'
        after = p.rsm('last')
        assert after == p.ids[-1]
    raise AssertionError('no end')


def stanza_ids(msg, by):
    return [e.get('id') for e in msg.findall(q(NS_SID, 'stanza-id')) if e.get('by') == by]


def wait_archive(c, n, form=None, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = archive(c, form=form)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


# ---- discovery ----------------------------------------------------------------

def test_disco_of_account(server):
    u = new_user(server)
    c = login(server, u)
    el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=jid(u))
    assert el.get('type') == 'result', tostr(el)
    feats = {f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))}
    assert NS_MAM in feats and NS_SID in feats, feats
    c.close()


def test_form_fields(server):
    u = new_user(server)
    c = login(server, u)
    el = c.iq('get', "<query xmlns='%s'/>" % NS_MAM)
    assert el.get('type') == 'result', tostr(el)
    x = el.find('%s/%s' % (q(NS_MAM, 'query'), q(NS_XDATA, 'x')))
    vars_ = {f.get('var') for f in x.findall(q(NS_XDATA, 'field'))}
    assert {'FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids', FULLTEXT} <= vars_, vars_
    c.close()


# ---- archiving ----------------------------------------------------------------

def test_both_sides_and_stanza_id(server):
    a, b = new_user(server), new_user(server)
    ca, cb = login(server, a), login(server, b)
    chat(ca, jid(b), 'hello there')
    m = cb.wait_message('hello there')
    sids = stanza_ids(m, jid(b))
    assert len(sids) == 1, tostr(m)
    got = wait_archive(cb, 1)
    assert len(got) == 1
    res = got[0].find(q(NS_MAM, 'result'))
    assert res.get('id') == sids[0]
    fwd = forwarded(got[0])
    assert fwd.findtext(q(NS_CLIENT, 'body')) == 'hello there'
    assert fwd.get('from').startswith(jid(a) + '/')
    assert got[0].find('%s/%s/%s' % (q(NS_MAM, 'result'), q(NS_FORWARD, 'forwarded'),
                                      q(NS_DELAY, 'delay'))).get('stamp')
    # the sender's own archive has it too
    mine = wait_archive(ca, 1)
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in mine] == ['hello there']
    assert forwarded(mine[0]).get('to') == jid(b)
    ca.close()
    cb.close()


def test_message_to_self_archived_once(server):
    """A message to one's own bare JID, or to one's own other resource, is
    one stanza in one archive (XEP-0313): archived once, under the id its
    copies carry."""
    a = new_user(server)
    c1 = login(server, a, resource='one')
    c2 = login(server, a, resource='two')
    chat(c1, jid(a), 'note to self')
    chat(c1, jid(a) + '/two', 'to my other device')
    m = c2.wait_message('to my other device')
    sids = stanza_ids(m, jid(a))
    sync(c1)
    got = wait_archive(c1, 3, timeout=2)
    bodies = [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in got]
    assert bodies == ['note to self', 'to my other device'], bodies
    assert got[1].find(q(NS_MAM, 'result')).get('id') == sids[0]
    c1.close()
    c2.close()


def test_spoofed_stanza_id_removed(server):
    a, b = new_user(server), new_user(server)
    ca, cb = login(server, a), login(server, b)
    spoof = "<stanza-id xmlns='%s' by='%s' id='forged'/>" % (NS_SID, jid(b))
    chat(ca, jid(b), 'spoofed', spoof)
    m = cb.wait_message('spoofed')
    sids = stanza_ids(m, jid(b))
    assert len(sids) == 1 and sids[0] != 'forged', tostr(m)
    # not archived (a hint says so): the forged one is still removed
    chat(ca, jid(b), 'spoofed2', spoof + "<no-store xmlns='%s'/>" % NS_HINTS)
    m = cb.wait_message('spoofed2')
    assert stanza_ids(m, jid(b)) == [], tostr(m)
    ca.close()
    cb.close()


def test_hints_and_chat_states(server):
    a, b = new_user(server), new_user(server)
    ca, cb = login(server, a), login(server, b)
    chat(ca, jid(b), 'nostore', "<no-store xmlns='%s'/>" % NS_HINTS)
    chat(ca, jid(b), 'noperm', "<no-permanent-store xmlns='%s'/>" % NS_HINTS)
    ca.send("<message to='%s' type='chat'><composing xmlns='%s'/></message>" % (jid(b), NS_CHATSTATES))
    chat(ca, jid(b), 'kept')
    chat(ca, jid(b), 'headline', typ='headline')
    cb.wait_message('kept')
    sync(ca)
    time.sleep(0.3)
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in archive(cb)] == ['kept']
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in archive(ca)] == ['kept']
    ca.close()
    cb.close()


def test_offline_message_archived_with_stanza_id(server):
    a, b = new_user(server), new_user(server)
    ca = login(server, a)
    chat(ca, jid(b), 'while away')
    sync(ca)
    cb = login(server, b, presence=False)
    got = wait_archive(cb, 1)
    assert len(got) == 1
    aid = got[0].find(q(NS_MAM, 'result')).get('id')
    cb.send('<presence/>')
    m = cb.wait_message('while away')
    assert stanza_ids(m, jid(b)) == [aid], tostr(m)
    ca.close()
    cb.close()


def test_no_archive_without_account(server):
    a = new_user(server)
    ghost = unique('ghost')
    ca = login(server, a)
    chat(ca, jid(ghost), 'to nobody')
    ca.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error', what='bounce')
    sync(ca)
    time.sleep(0.3)
    assert server.db_query('SELECT count(*) FROM archive WHERE owner = ?', (jid(ghost),)) == [(0,)]
    # the sender's own archive keeps what it sent
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in archive(ca)] == ['to nobody']
    assert server.db_query('SELECT count(*) FROM archive WHERE owner = ?', (jid(a),)) == [(1,)]
    ca.close()


def test_prefs(server):
    a, b, c_ = new_user(server), new_user(server), new_user(server)
    ca, cb, cc = login(server, a), login(server, b), login(server, c_)
    el = cb.iq('get', "<prefs xmlns='%s'/>" % NS_MAM)
    assert el.get('type') == 'result' and el.find(q(NS_MAM, 'prefs')).get('default') == 'always', tostr(el)
    # never by default, but always with a
    el = cb.iq('set', "<prefs xmlns='%s' default='never'><always><jid>%s</jid></always><never/></prefs>"
               % (NS_MAM, jid(a)))
    assert el.get('type') == 'result', tostr(el)
    el = cb.iq('get', "<prefs xmlns='%s'/>" % NS_MAM)
    p = el.find(q(NS_MAM, 'prefs'))
    assert p.get('default') == 'never'
    assert [j.text for j in p.iter(q(NS_MAM, 'jid'))] == [jid(a)]
    chat(ca, jid(b), 'from a')
    chat(cc, jid(b), 'from c')
    ma, mc = wait_bodies(cb, 'from a', 'from c')
    assert len(stanza_ids(ma, jid(b))) == 1
    assert stanza_ids(mc, jid(b)) == [], tostr(mc)
    time.sleep(0.3)
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in archive(cb)] == ['from a']
    # roster: only contacts
    el = cb.iq('set', "<query xmlns='%s'><item jid='%s'/></query>" % (NS_ROSTER, jid(c_)))
    assert el.get('type') == 'result', tostr(el)
    el = cb.iq('set', "<prefs xmlns='%s' default='roster'/>" % NS_MAM)
    assert el.get('type') == 'result', tostr(el)
    chat(ca, jid(b), 'a again')
    chat(cc, jid(b), 'c again')
    wait_bodies(cb, 'a again', 'c again')
    time.sleep(0.3)
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in archive(cb)] == ['from a', 'c again']
    # preferences are read for a user without a session too
    cb.close()
    chat(ca, jid(b), 'a offline')
    chat(cc, jid(b), 'c offline')
    sync(ca)
    sync(cc)
    cb = login(server, b, presence=False)
    time.sleep(0.3)
    assert ([forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in archive(cb)]
            == ['from a', 'c again', 'c offline'])
    for c in (ca, cb, cc):
        c.close()


def test_slixmpp_client(server, run):
    """A client library's MAM (slixmpp xep_0313) pages through the archive."""
    from slixmpp import JID
    a, b = new_user(server), new_user(server)
    ca = login(server, a)
    for i in range(7):
        chat(ca, jid(b), 'lib %d' % i)
    sync(ca)

    async def go():
        c = await parleytest.login(server, b, password='mam-secret', plugins=('xep_0313', 'xep_0359'))
        try:
            bodies = []
            # iterate yields the result messages, page by page (3 a page)
            async for msg in c['xep_0313'].iterate(with_jid=JID(jid(a)), rsm={'max': 3}):
                bodies.append(msg['mam_result']['forwarded']['stanza']['body'])
            return bodies
        finally:
            await parleytest.logout(c)

    bodies = run(go())
    assert bodies == ['lib %d' % i for i in range(7)], bodies
    ca.close()


# ---- queries --------------------------------------------------------------------

@pytest.fixture(scope='module')
def filled(server):
    """alice-like user u with 30 messages: 10 each from p1, p2 and to p3."""
    u, p1, p2, p3 = (new_user(server) for _ in range(4))
    cu = login(server, u)
    c1, c2 = login(server, p1), login(server, p2)
    for i in range(10):
        chat(c1, jid(u), 'one %d apple' % i)
        chat(c2, jid(u), 'two %d pear' % i)
        chat(cu, jid(p3), 'three %d plum' % i)
        sync(c1)
        sync(c2)
        sync(cu)
    got = wait_archive(cu, 30)
    assert len(got) == 30
    c1.close()
    c2.close()
    yield u, p1, p2, p3, cu, got
    cu.close()


def test_with_filter(filled):
    u, p1, p2, p3, cu, _ = filled
    got = archive(cu, form=[('with', jid(p1))])
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in got] == ['one %d apple' % i for i in range(10)]
    got = archive(cu, form=[('with', jid(p3))])
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in got] == ['three %d plum' % i for i in range(10)]


def test_start_end_ids_filters(filled):
    u, p1, p2, p3, cu, all_ = filled
    stamps = [r.find('%s/%s/%s' % (q(NS_MAM, 'result'), q(NS_FORWARD, 'forwarded'), q(NS_DELAY, 'delay')))
              .get('stamp') for r in all_]
    ids = [r.find(q(NS_MAM, 'result')).get('id') for r in all_]
    got = archive(cu, form=[('start', stamps[10]), ('end', stamps[19])])
    assert [r.find(q(NS_MAM, 'result')).get('id') for r in got] == ids[10:20]
    got = archive(cu, form=[('ids', [ids[3], ids[7], ids[25]])])
    assert [r.find(q(NS_MAM, 'result')).get('id') for r in got] == [ids[3], ids[7], ids[25]]
    got = archive(cu, form=[('after-id', ids[27])])
    assert [r.find(q(NS_MAM, 'result')).get('id') for r in got] == ids[28:]
    got = archive(cu, form=[('before-id', ids[2])])
    assert [r.find(q(NS_MAM, 'result')).get('id') for r in got] == ids[:2]
    # start after end: an empty, complete page
    p = query(cu, form=[('start', stamps[19]), ('end', stamps[10])])
    assert p.ok and p.results == [] and p.complete, tostr(p.answer)


def test_fulltext(filled):
    u, p1, p2, p3, cu, _ = filled
    got = archive(cu, form=[(FULLTEXT, 'PEAR')])
    assert [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in got] == ['two %d pear' % i for i in range(10)]


FT_ROWS = 20000
FT_BASE = 1700000000000000


def fill_for_fulltext(server, owner, peer):
    """FT_ROWS messages of owner with peer, straight in SQL: message x
    (1..FT_ROWS) has id FT_BASE + x * 1000 and the body 'note x filler',
    with 'everyday' in every body, 'oldtopic' in the first 3000, 'rareword'
    in two old ones (7 and 12345) and 'evenword' in the even ones."""
    cat = (lambda *a: 'CONCAT(%s)' % ', '.join(a)) if server.storage == 'mysql' else \
        (lambda *a: ' || '.join(a))
    digits = '(SELECT 0 AS d UNION ALL %s)' % ' UNION ALL '.join('SELECT %d' % i for i in range(1, 10))
    x = 'a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 1'
    body = cat("'note '", 'CAST(x AS CHAR(8))' if server.storage == 'mysql' else 'CAST(x AS TEXT)',
               "' filler everyday'",
               "CASE WHEN x <= 3000 THEN ' oldtopic' ELSE '' END",
               "CASE WHEN x IN (7, 12345) THEN ' rareword' ELSE '' END",
               "CASE WHEN x % 2 = 0 THEN ' evenword' ELSE '' END")
    stanza = cat("'<message xmlns=''jabber:client'' type=''chat'' from=''%s/r'' to=''%s''><body>'" % (peer, owner),
                 body, "'</body></message>'")
    server.db_query(
        "INSERT INTO archive (server_host, owner, id, peer, resource, outgoing, body, stanza) "
        "SELECT '%s', '%s', %d + x * 1000, '%s', 'r', 0, %s, %s "
        "FROM (SELECT %s AS x FROM %s a, %s b, %s c, %s e, %s f) n WHERE x <= %d"
        % (HOST, owner, FT_BASE, peer, body, stanza, x, digits, digits, digits, digits, digits, FT_ROWS))
    if server.storage == 'pgsql':
        server.db_query('ANALYZE archive')
    if server.storage == 'mysql':
        # InnoDB writes a large commit's words from its full-text cache to
        # the index in the background, and a search meanwhile can miss
        # some of them: have that done now, then check every word.
        try:
            server.db_query('SET GLOBAL innodb_optimize_fulltext_only = ON; OPTIMIZE TABLE archive')
        finally:
            server.db_query('SET GLOBAL innodb_optimize_fulltext_only = OFF')
        for words, n in (('+oldtopic', 3000), ('+rareword', 2), ('+everyday', FT_ROWS),
                         ('+everyday +evenword', FT_ROWS // 2)):
            got = server.db_query('SELECT COUNT(*) FROM archive WHERE owner = ? '
                                  'AND MATCH (body) AGAINST (? IN BOOLEAN MODE)', (owner, words))
            assert got == [(n,)], 'InnoDB finds %s in %s rows, not %d' % (words, got, n)


def ft_ids(*xs):
    return [str(FT_BASE + x * 1000) for x in xs]


def fts_index_scans(server):
    """How many times PostgreSQL read the text index archive_fts.  A
    backend sends its counts when it goes idle, or up to 10 s later when it
    sent some less than a second before."""
    return server.db_query("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'archive_fts'")[0][0]


def test_fulltext_large_archive(server):
    """Full-text pages of a 20,000-message archive: a rare word, a word
    only in old messages, a word in every message and one in every other,
    backwards and forwards, with RSM paging; the rows are the right ones
    whichever way the store reads them.  On PostgreSQL a word only in old
    messages is read through the text index (not along the whole archive
    in id order)."""
    u, p = new_user(server), new_user(server)
    fill_for_fulltext(server, jid(u), jid(p))
    cu = login(server, u)
    # a word only in the oldest 3000, newest first, and its pages back
    if server.storage == 'pgsql':
        time.sleep(11)  # the counts of earlier queries sent
        before = fts_index_scans(server)
    pg = query(cu, form=[(FULLTEXT, 'oldtopic')], rsm=[('max', 50), ('before', None)])
    assert pg.ids == ft_ids(*range(2951, 3001)) and not pg.complete
    if server.storage == 'pgsql':
        deadline = time.monotonic() + 15
        while fts_index_scans(server) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert fts_index_scans(server) > before, 'the text index was not read'
    first = pg.rsm('first')
    # a rare word: its two messages, complete
    pg = query(cu, form=[(FULLTEXT, 'rareword')], rsm=[('max', 50), ('before', None)])
    assert pg.ok and pg.ids == ft_ids(7, 12345) and pg.complete, tostr(pg.answer)
    assert pg.bodies == ['note 7 filler everyday oldtopic rareword', 'note 12345 filler everyday rareword']
    pg = query(cu, form=[(FULLTEXT, 'RAREWORD'), ('with', jid(p))], rsm=[('max', 1)])
    assert pg.ids == ft_ids(7) and not pg.complete
    pg = query(cu, form=[(FULLTEXT, 'nosuchword')], rsm=[('max', 50), ('before', None)])
    assert pg.ok and pg.ids == [] and pg.complete
    pg = query(cu, form=[(FULLTEXT, 'oldtopic')], rsm=[('max', 50), ('before', first)])
    assert pg.ids == ft_ids(*range(2901, 2951)) and not pg.complete
    pg = query(cu, form=[(FULLTEXT, 'oldtopic')], rsm=[('max', 50), ('after', ft_ids(2980)[0])])
    assert pg.ids == ft_ids(*range(2981, 3001)) and pg.complete
    pg = query(cu, form=[(FULLTEXT, 'oldtopic'), ('end', stamp_of(FT_BASE + 100 * 1000))],
               rsm=[('max', 10), ('before', None)])
    assert pg.ids == ft_ids(*range(91, 101)) and not pg.complete
    # a word in every message and one in every other: newest and oldest pages
    pg = query(cu, form=[(FULLTEXT, 'everyday')], rsm=[('max', 50), ('before', None)])
    assert pg.ids == ft_ids(*range(FT_ROWS - 49, FT_ROWS + 1)) and not pg.complete
    pg = query(cu, form=[(FULLTEXT, 'everyday evenword')], rsm=[('max', 5), ('before', ft_ids(FT_ROWS)[0])])
    assert pg.ids == ft_ids(*range(FT_ROWS - 10, FT_ROWS, 2)) and not pg.complete
    pg = query(cu, form=[(FULLTEXT, 'evenword')], rsm=[('max', 5)])
    assert pg.ids == ft_ids(2, 4, 6, 8, 10) and not pg.complete
    pg = query(cu, form=[(FULLTEXT, 'rareword evenword')], rsm=[('max', 5)])
    assert pg.ids == [] and pg.complete
    cu.close()


def stamp_of(mam_id):
    """The XEP-0082 time of an archive id (microseconds since the epoch)."""
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(mam_id // 1000000)) + '.%06dZ' % (mam_id % 1000000)


def test_rsm_pages(filled):
    u, p1, p2, p3, cu, all_ = filled
    ids = [r.find(q(NS_MAM, 'result')).get('id') for r in all_]
    p = query(cu, rsm=[('max', 7)])
    assert p.ids == ids[:7] and not p.complete
    assert p.rsm('first') == ids[0] and p.rsm('last') == ids[6]
    p = query(cu, rsm=[('max', 7), ('before', None)])
    assert p.ids == ids[-7:] and not p.complete
    p = query(cu, rsm=[('max', 7), ('before', ids[5])])
    assert p.ids == ids[:5] and p.complete
    p = query(cu, rsm=[('max', 5), ('after', ids[24])])
    assert p.ids == ids[25:] and p.complete
    p = query(cu, rsm=[('max', 5), ('after', ids[23])])
    assert p.ids == ids[24:29] and not p.complete
    # XEP-0313 1.1 flip-page: the newest page, newest first
    p = query(cu, rsm=[('max', 4), ('before', None)], flip=True)
    assert p.ids == ids[-4:][::-1] and not p.complete
    assert p.rsm('first') == ids[-4] and p.rsm('last') == ids[-1]


def test_metadata(filled):
    u, p1, p2, p3, cu, all_ = filled
    ids = [r.find(q(NS_MAM, 'result')).get('id') for r in all_]
    el = cu.iq('get', "<metadata xmlns='%s'/>" % NS_MAM)
    assert el.get('type') == 'result', tostr(el)
    md = el.find(q(NS_MAM, 'metadata'))
    assert md.find(q(NS_MAM, 'start')).get('id') == ids[0]
    assert md.find(q(NS_MAM, 'end')).get('id') == ids[-1]


def test_results_before_answer_in_order(filled):
    """The results, then the iq result, then the answer to what the client
    sent after the query."""
    u, p1, p2, p3, cu, all_ = filled
    iq_id, ping_id, qid = unique('q'), unique('p'), unique('qid')
    cu.send("<iq type='set' id='%s'>%s</iq><iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
            % (iq_id, query_xml(rsm=[('max', 20)], queryid=qid), ping_id, HOST))
    order, ids = read_in_order(cu, 22, iq_id, ping_id)
    assert order == ['r'] * 20 + ['fin', 'ping'], order
    assert ids == [r.find(q(NS_MAM, 'result')).get('id') for r in all_[:20]], ids


def read_in_order(c, n, iq_id, ping_id):
    """The next n stanzas of a query and a ping as 'r' (a result), 'fin'
    (the query's iq result) and 'ping', and the ids of the results."""
    order, ids = [], []
    while len(order) < n:
        el = c.next(10)
        assert el is not None, order
        res = el.find(q(NS_MAM, 'result'))
        if el.tag == q(NS_CLIENT, 'message') and res is not None:
            order.append('r')
            ids.append(res.get('id'))
        elif el.tag == q(NS_CLIENT, 'iq') and el.get('id') == iq_id:
            order.append('fin')
            assert el.get('type') == 'result', tostr(el)
            fin = el.find(q(NS_MAM, 'fin'))
            rsm = '%s/%s' % (q(NS_RSM, 'set'), q(NS_RSM, '%s'))
            assert [fin.findtext(rsm % 'first'), fin.findtext(rsm % 'last')] == [ids[0], ids[-1]], tostr(el)
        elif el.tag == q(NS_CLIENT, 'iq') and el.get('id') == ping_id:
            order.append('ping')
    return order, ids


def test_held_query_in_order(server):
    """A query that waits behind a message being stored offline: its
    results come in archive order, then its iq result, then the answer to
    the ping sent after it."""
    u, off = new_user(server), new_user(server)
    cu = login(server, u)
    for i in range(6):
        chat(cu, jid(off), 'held %d' % i)
    sync(cu)
    want = [r.find(q(NS_MAM, 'result')).get('id') for r in wait_archive(cu, 6)]
    assert len(want) == 6
    for _ in range(3):
        iq_id, ping_id = unique('q'), unique('p')
        cu.send("<message to='%s' type='chat' id='%s'><body>later</body></message>"
                "<iq type='set' id='%s'>%s</iq><iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                % (jid(off), unique('m'), iq_id, query_xml(rsm=[('max', 5)], queryid=unique('qid')), ping_id, HOST))
        order, ids = read_in_order(cu, 7, iq_id, ping_id)
        assert order == ['r'] * 5 + ['fin', 'ping'], order
        assert ids == want[:5], (ids, want)
    cu.close()


def test_bad_input(filled, server):
    u, p1, p2, p3, cu, all_ = filled
    for m in ('-1', 'abc', '1e3', ''):
        p = query(cu, rsm=[('max', m)])
        assert stanza_error(p.answer) == 'bad-request', (m, tostr(p.answer))
    p = query(cu, rsm=[('max', 100000000)])
    assert p.ok and len(p.results) == 30 and p.complete
    p = query(cu, rsm=[('max', 10), ('after', '123456')])
    assert stanza_error(p.answer) == 'item-not-found', tostr(p.answer)
    p = query(cu, rsm=[('max', 10), ('before', 'nonsense')])
    assert stanza_error(p.answer) == 'item-not-found', tostr(p.answer)
    p = query(cu, rsm=[('index', 3)])
    assert stanza_error(p.answer) == 'feature-not-implemented', tostr(p.answer)
    for form in ([('start', 'yesterday')], [('end', '2020-13-01T00:00:00Z')], [('with', '@@')]):
        p = query(cu, form=form)
        assert stanza_error(p.answer) == 'bad-request', (form, tostr(p.answer))
    # a field the server does not know (XEP-0313: feature-not-implemented)
    p = query(cu, form=[('unknown-field', 'x')])
    assert stanza_error(p.answer) == 'feature-not-implemented', tostr(p.answer)
    # every id the form names must name a message of this archive
    ids = [r.find(q(NS_MAM, 'result')).get('id') for r in all_]
    missing = str((int(ids[3]) + int(ids[4])) // 2)
    assert missing not in ids
    cp3 = login(server, p3)
    foreign = [r.find(q(NS_MAM, 'result')).get('id') for r in archive(cp3)]
    cp3.close()
    assert foreign and not set(foreign) & set(ids)
    for form in ([('ids', ['x1'])], [('ids', [missing])], [('ids', [ids[2], missing])],
                 [('ids', [foreign[0]])], [('after-id', missing)], [('before-id', missing)],
                 [('after-id', ids[1]), ('before-id', missing)], [('after-id', 'nonsense')]):
        p = query(cu, form=form)
        assert stanza_error(p.answer) == 'item-not-found', (form, tostr(p.answer))
        assert p.results == [], form
    # the same ids, present: answered
    p = query(cu, form=[('ids', [ids[2], ids[2], ids[5]]), ('after-id', ids[1])], rsm=[('after', ids[2])])
    assert p.ok and [r.find(q(NS_MAM, 'result')).get('id') for r in p.results] == [ids[5]], tostr(p.answer)
    # someone else's archive
    p = query(cu, to=jid(p1))
    assert stanza_error(p.answer) == 'forbidden', tostr(p.answer)
    assert p.results == []
    el = cu.iq('set', "<prefs xmlns='%s' default='sometimes'/>" % NS_MAM)
    assert stanza_error(el) == 'bad-request', tostr(el)


def test_paging_10000(server):
    """10,000 messages sent pipelined; paged forwards and backwards in full
    without gaps or duplicates, complete exactly on the last page."""
    a, b = new_user(server), new_user(server)
    ca, cb = login(server, a), login(server, b)
    n, chunk = 10000, 500
    for start in range(0, n, chunk):
        ca.send(''.join("<message to='%s' type='chat'><body>m%05d</body></message>" % (jid(b), i)
                        for i in range(start, start + chunk)))
        got = 0
        while got < chunk:
            el = cb.next(30)
            assert el is not None
            if el.tag == q(NS_CLIENT, 'message'):
                got += 1
    # the answer waits for the last archive write: 20,000 rows, which take
    # a while in the sanitizer build on a busy machine
    sync(ca, timeout=180)
    fwd = archive(cb, page=100)
    bodies = [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in fwd]
    assert bodies == ['m%05d' % i for i in range(n)]
    ids = [int(r.find(q(NS_MAM, 'result')).get('id')) for r in fwd]
    assert ids == sorted(set(ids))
    # backwards from the end
    back = []
    before = ''
    pages = 0
    while True:
        p = query(cb, rsm=[('max', 100), ('before', before if before else None)])
        assert p.ok, tostr(p.answer)
        pages += 1
        back[:0] = p.ids
        if p.complete:
            break
        assert len(p.ids) == 100
        before = p.rsm('first')
    assert pages == 100
    assert [int(i) for i in back] == ids
    # the sender's archive has them all as well
    ma = archive(ca, page=100)
    assert len(ma) == n
    ca.close()
    cb.close()


def test_ctl_purge(server):
    a, b = new_user(server), new_user(server)
    ca, cb = login(server, a), login(server, b)
    chat(ca, jid(b), 'to be purged')
    cb.wait_message('to be purged')
    assert len(wait_archive(cb, 1)) == 1
    r = server.ctl('mam-purge', jid(b))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert archive(cb) == []
    assert len(archive(ca)) == 1          # the other party's archive stays
    r = server.ctl('mam-purge', 'x@nowhere.invalid')
    assert r.returncode == 1, (r.returncode, r.stderr)
    r = server.ctl('mam-purge', 'not a jid@@')
    assert r.returncode == 2, (r.returncode, r.stderr)
    ca.close()
    cb.close()


# ---- retention --------------------------------------------------------------------

@pytest.fixture
def short_server(tmp_path_factory):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-mam-age'))
    text = srv.config.read_text()
    marker = 'modules:\n  disco: {}\n'
    assert marker in text
    srv.config.write_text(text.replace(
        marker, marker + '  mam: { max_age: 4s, expire_interval: 0.5s, max_page: 5, fulltext: false }\n', 1))
    srv.start_with_users()
    yield srv
    srv.finish()


def test_retention_and_options(short_server):
    srv = short_server
    a, b = new_user(srv), new_user(srv)
    ca, cb = login(srv, a), login(srv, b)
    for i in range(8):
        chat(ca, jid(b), 'old %d' % i)
    sync(ca)
    # max_page caps a page
    p = query(cb, rsm=[('max', 50)])
    assert p.ok and len(p.results) == 5 and not p.complete, tostr(p.answer)
    # no full-text field when it is off
    el = cb.iq('get', "<query xmlns='%s'/>" % NS_MAM)
    vars_ = {f.get('var') for f in el.iter(q(NS_XDATA, 'field'))}
    assert FULLTEXT not in vars_ and 'with' in vars_
    p = query(cb, form=[(FULLTEXT, 'old')])
    assert stanza_error(p.answer) == 'feature-not-implemented', tostr(p.answer)
    time.sleep(3)
    chat(ca, jid(b), 'new')
    sync(ca)
    # Retention runs beside these queries: one page of five is the whole
    # archive once the old messages are gone.  (Paging on while it runs
    # could ask for a page after a message it has just removed, which is
    # rightly item-not-found.)
    deadline = time.monotonic() + 10
    while True:
        p = query(cb, rsm=[('max', 5)])
        assert p.ok, tostr(p.answer)
        if (p.complete and p.bodies == ['new']) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert p.complete and p.bodies == ['new'], p.bodies
    ca.close()
    cb.close()


# ---- MUC archives -------------------------------------------------------------------

def test_muc_archive(server):
    from test_muc import SERVICE, joined, configured, new_room, take, is_message
    a, b, outsider = new_user(server), new_user(server), new_user(server)
    ca, cb, co = login(server, a), login(server, b), login(server, outsider)
    room = new_room('mam')
    j = joined(ca, room, 'anna')
    if 201 in j.codes:
        configured(ca, room)
    el = ca.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    feats = {f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))}
    assert NS_MAM in feats, feats
    joined(cb, room, 'bert')
    spoof = "<stanza-id xmlns='%s' by='%s' id='forged'/>" % (NS_SID, room)
    for i in range(3):
        ca.send("<message to='%s' type='groupchat'><body>room %d</body>%s</message>" % (room, i, spoof))
    seen = []
    for i in range(3):
        m = take(cb, lambda e: is_message(e, body='room %d' % i), 10, 'room message')
        sids = stanza_ids(m, room)
        assert len(sids) == 1 and sids[0] != 'forged', tostr(m)
        seen.append(sids[0])
    time.sleep(0.3)
    p = query(cb, to=room, rsm=[('max', 10)])
    assert p.ok, tostr(p.answer)
    assert p.ids == seen and p.complete
    assert [r.get('from') for r in p.results] == [room] * 3
    assert [forwarded(r).get('from') for r in p.results] == [room + '/anna'] * 3
    assert p.bodies == ['room 0', 'room 1', 'room 2']
    # not an occupant
    p = query(co, to=room)
    assert stanza_error(p.answer) == 'forbidden', tostr(p.answer)
    # archiving switched off: nothing more is kept, queries are refused
    configured(ca, room, {'muc#roomconfig_enablearchiving': '0'})
    ca.send("<message to='%s' type='groupchat'><body>unkept</body></message>" % room)
    m = take(cb, lambda e: is_message(e, body='unkept'), 10, 'room message')
    assert stanza_ids(m, room) == []
    for c in (ca, cb, co):
        c.close()


def test_muc_private_message_to_a_shared_nick_archived_once(server):
    """A private message through a room to a nick that two resources of
    one user share reaches each resource as a copy (XEP-0045 §7.2); the
    user's archive keeps it once, under the id both copies carry."""
    from test_muc import joined, configured, new_room, take, is_message
    a, b = new_user(server), new_user(server)
    ca, b1, b2 = login(server, a), login(server, b, resource='one'), login(server, b, resource='two')
    room = new_room('pm')
    j = joined(ca, room, 'anna')
    if 201 in j.codes:
        configured(ca, room)
    joined(b1, room, 'bert')
    joined(b2, room, 'bert')
    ca.send("<message to='%s/bert' type='chat' id='pm1'><body>just for bert</body></message>" % room)
    ids = []
    for c in (b1, b2):
        m = take(c, lambda e: is_message(e, body='just for bert'), 10, 'private message')
        assert m.get('from') == room + '/anna', tostr(m)
        ids.append(stanza_ids(m, jid(b)))
    assert len(ids[0]) == 1 and ids[0] == ids[1], ids
    # two different private messages in a row are two
    ca.send("<message to='%s/bert' type='chat'><body>second</body></message>" % room)
    ca.send("<message to='%s/bert' type='chat'><body>third</body></message>" % room)
    for c in (b1, b2):
        for body in ('second', 'third'):
            take(c, lambda e: is_message(e, body=body), 10, 'private message')
    wait_archive(b1, 3, form=[('with', room + '/anna')])
    time.sleep(0.3)  # a second copy's store would be as quick as the first's
    got = archive(b1, form=[('with', room + '/anna')])
    bodies = [forwarded(r).findtext(q(NS_CLIENT, 'body')) for r in got]
    assert bodies == ['just for bert', 'second', 'third'], bodies
    assert got[0].find(q(NS_MAM, 'result')).get('id') == ids[0][0]
    for c in (ca, b1, b2):
        c.close()
