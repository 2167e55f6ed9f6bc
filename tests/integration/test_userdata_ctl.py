"""parleyctl get-roster, offline-list, offline-count, registered-users-count
and registered-users by pages, against a running parleyd (a roster set by a
real client login, messages stored offline by send-message) and again with
parleyd stopped (parleyctl reads the store itself).  Runs on the store of
the run (sqlite, or PostgreSQL / MariaDB / ODBC through run-*.sh)."""
import json

import pytest

from parleytest import HOST, NS_CLIENT, Parleyd, RawClient, q

ROSTER = 'jabber:iq:roster'


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    s = Parleyd(tmp_path_factory.mktemp('userdata'))
    s.start_with_users()
    yield s
    s.finish()


def ctl_json(srv, *args):
    r = srv.ctl(args[0], '--json', *args[1:])
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout)


def test_roster_set_by_a_client_is_shown(srv):
    with RawClient(srv.port) as c:
        c.login('alice', srv.password('alice'))
        r = c.iq('set', "<query xmlns='%s'><item jid='bob@%s' name='Bob B.'><group>Friends</group>"
                        "<group>Work</group></item></query>" % (ROSTER, HOST))
        assert r.get('type') == 'result'
        c.send("<presence type='subscribe' to='bob@%s'/>" % HOST)
        r = c.iq('set', "<query xmlns='%s'><item jid='carol@%s'/></query>" % (ROSTER, HOST))
        assert r.get('type') == 'result'
        # a round trip after the subscribe, so it is stored before we look
        c.iq('get', "<query xmlns='%s'/>" % ROSTER)
    data = ctl_json(srv, 'get-roster', 'alice@' + HOST)
    assert data['jid'] == 'alice@' + HOST
    assert data['count'] == 2
    items = {i['jid']: i for i in data['items']}
    assert set(items) == {'bob@' + HOST, 'carol@' + HOST}
    assert items['bob@' + HOST]['name'] == 'Bob B.'
    assert sorted(items['bob@' + HOST]['groups']) == ['Friends', 'Work']
    assert items['bob@' + HOST]['ask'] == 'out'
    assert items['carol@' + HOST]['name'] is None and items['carol@' + HOST]['groups'] == []
    assert data['version'] > 0
    # the text form: one contact a line, tab-separated
    r = srv.ctl('get-roster', 'alice@' + HOST)
    assert r.returncode == 0, r.stderr
    lines = sorted(r.stdout.splitlines())
    assert lines[0].split('\t')[:4] == ['bob@' + HOST, 'Bob B.', 'none', 'out']
    assert set(lines[0].split('\t')[4].split(',')) == {'Friends', 'Work'}
    # bob has alice's request pending
    data = ctl_json(srv, 'get-roster', 'bob@' + HOST)
    assert [(i['jid'], i['ask']) for i in data['items']] == [('alice@' + HOST, 'in')]


def test_offline_queue(srv):
    for i in range(3):
        r = srv.ctl('send-message', 'bob@' + HOST, 'erin@' + HOST, 'queued <%d> & more' % i)
        assert r.returncode == 0, r.stderr
    r = srv.ctl('offline-count', 'erin@' + HOST)
    assert (r.returncode, r.stdout.strip()) == (0, '3'), r.stderr
    data = ctl_json(srv, 'offline-list', 'erin@' + HOST)
    assert (data['count'], data['shown']) == (3, 3)
    assert [m['body'] for m in data['messages']] == ['queued <%d> & more' % i for i in range(3)]
    assert all(m['from'].startswith('bob@' + HOST) for m in data['messages'])
    assert all('<message' in m['stanza'] for m in data['messages'])
    seqs = [m['seq'] for m in data['messages']]
    assert seqs == sorted(seqs)
    data = ctl_json(srv, 'offline-list', 'erin@' + HOST, '--limit', '2')
    assert (data['count'], data['shown'], len(data['messages'])) == (3, 2, 2)
    r = srv.ctl('offline-list', 'erin@' + HOST, '--limit', '1')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[1] == '(2 more)' and '&lt;0&gt;' in lines[0], lines
    # nothing was taken from the queue: erin logs in and gets all three
    with RawClient(srv.port) as c:
        c.login('erin', srv.password('erin'), presence=False)
        c.send('<presence/>')
        for i in range(3):
            c.wait_message('queued <%d> & more' % i)
    r = srv.ctl('offline-count', 'erin@' + HOST)
    assert (r.returncode, r.stdout.strip()) == (0, '0'), r.stderr
    assert ctl_json(srv, 'offline-list', 'erin@' + HOST)['messages'] == []


@pytest.fixture
def roomy(tmp_path):
    """A parleyd whose offline queues take 1000 messages."""
    s = Parleyd(tmp_path / 'roomy')
    text = s.config.read_text()
    mark = '      register: {'
    assert text.count(mark) == 1
    s.config.write_text(text.replace(mark, '      offline: { max_per_user: 1000 }\n' + mark))
    s.start_with_users()
    s.register('pager', HOST, 'pager-pw')
    yield s
    s.finish()


def test_offline_queue_by_pages(roomy):
    """A long queue is read a page at a time: 100 messages unless --limit
    says, then how many follow and (JSON) where the next page starts."""
    srv = roomy
    with RawClient(srv.port) as c:
        c.login('bob', srv.password('bob'), presence=False)
        for i in range(205):
            c.send("<message to='pager@%s' type='chat'><body>page %03d</body></message>" % (HOST, i))
        c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    r = srv.ctl('offline-count', 'pager@' + HOST)
    assert (r.returncode, r.stdout.strip()) == (0, '205'), r.stderr
    r = srv.ctl('offline-list', 'pager@' + HOST)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 101 and lines[-1] == '(105 more)', lines[-3:]
    assert 'page 000' in lines[0] and 'page 099' in lines[99]
    first = ctl_json(srv, 'offline-list', 'pager@' + HOST)
    assert (first['count'], first['shown'], first['more']) == (205, 100, 105)
    assert first['next'] == first['messages'][-1]['seq']
    bodies, after, pages = [], '0', 0
    while after is not None:
        page = ctl_json(srv, 'offline-list', 'pager@' + HOST, '--after', str(after), '--limit', '90')
        pages += 1
        assert page['count'] == 205 and page['shown'] == len(page['messages']) <= 90
        assert page['more'] == 205 - len(bodies) - page['shown']
        bodies += [m['body'] for m in page['messages']]
        after = page['next']
    assert pages == 3 and bodies == ['page %03d' % i for i in range(205)]
    # the text form of a later page: its lines and what follows it
    r = srv.ctl('offline-list', 'pager@' + HOST, '--limit', '5', '--after', str(first['next']))
    lines = r.stdout.splitlines()
    assert len(lines) == 6 and 'page 100' in lines[0] and lines[-1] == '(100 more)', lines
    # past the end: nothing, and nothing more
    last = ctl_json(srv, 'offline-list', 'pager@' + HOST, '--after', str(2 ** 62))
    assert (last['count'], last['shown'], last['more'], last['next']) == (205, 0, 0, None)
    r = srv.ctl('offline-list', 'pager@' + HOST, '--after', str(2 ** 62))
    assert (r.returncode, r.stdout) == (0, ''), r


def allow_rows_without_stanza(srv):
    """Parley's schema forbids an offline row without a stanza; a database
    changed by hand may still have one: drop the NOT NULL."""
    if srv.storage in ('pgsql', 'odbc'):
        srv.db_query('ALTER TABLE offline_messages ALTER COLUMN stanza DROP NOT NULL')
    elif srv.storage == 'mysql':
        srv.db_query('ALTER TABLE offline_messages MODIFY stanza MEDIUMTEXT NULL')
    else:
        # SQLite cannot drop a constraint: the table again, without it
        cols = 'seq, server_host, username, created_at, from_jid, stanza, token'
        for sql in ('CREATE TABLE offline_loose (seq INTEGER PRIMARY KEY AUTOINCREMENT, '
                    'server_host TEXT NOT NULL, username TEXT NOT NULL, '
                    'created_at INTEGER NOT NULL, from_jid TEXT NOT NULL, stanza TEXT, token TEXT)',
                    'INSERT INTO offline_loose (%s) SELECT %s FROM offline_messages' % (cols, cols),
                    'DROP TABLE offline_messages',
                    'ALTER TABLE offline_loose RENAME TO offline_messages',
                    'CREATE INDEX offline_messages_user ON offline_messages '
                    '(server_host, username, seq)'):
            srv.db_query(sql)


def test_rows_without_stanza_do_not_end_the_list(roomy):
    """A row with no stanza is no message: it is not listed and not counted,
    and the pages go on past it (it does not make a page look like the
    last)."""
    srv = roomy
    srv.register('holes', HOST, 'holes-pw')
    allow_rows_without_stanza(srv)

    def hole():
        srv.db_query("INSERT INTO offline_messages (server_host, username, created_at, from_jid, "
                     "stanza) VALUES (?, 'holes', 1, ?, NULL)", (HOST, 'bob@' + HOST))

    def send(bodies):
        with RawClient(srv.port) as c:
            c.login('bob', srv.password('bob'), presence=False)
            for b in bodies:
                c.send("<message to='holes@%s' type='chat'><body>%s</body></message>" % (HOST, b))
            c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)

    send(['hole %d' % i for i in range(3)])
    hole()
    hole()
    send(['hole %d' % i for i in range(3, 6)])
    hole()
    bodies, after, pages = [], 0, 0
    while after is not None:
        page = ctl_json(srv, 'offline-list', 'holes@' + HOST, '--after', str(after), '--limit', '3')
        pages += 1
        assert page['count'] == 6, page
        assert page['more'] == 6 - len(bodies) - page['shown'], page
        bodies += [m['body'] for m in page['messages']]
        after = page['next']
        assert pages <= 2, page
    assert bodies == ['hole %d' % i for i in range(6)]
    r = srv.ctl('offline-list', 'holes@' + HOST, '--limit', '3')
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and 'hole 2' in lines[2] and lines[-1] == '(3 more)', lines


def test_bad_input(srv):
    for cmd in ('get-roster', 'offline-list', 'offline-count'):
        r = srv.ctl(cmd, 'nobody@' + HOST)
        assert r.returncode == 1 and 'no such user nobody@' + HOST in r.stderr, (cmd, r)
        r = srv.ctl(cmd, 'alice@nowhere.example')
        assert r.returncode == 1 and 'not served here' in r.stderr, (cmd, r)
        r = srv.ctl(cmd, 'alice')
        assert r.returncode == 2 and 'USER@HOST' in r.stderr, (cmd, r)
    for bad in ('0', 'x', '-1', '1001', '5x', ''):
        r = srv.ctl('offline-list', 'alice@' + HOST, '--limit', bad)
        assert r.returncode == 2 and '--limit' in r.stderr, (bad, r)
    for bad in ('x', '-1', '1e3', '', '99999999999999999999'):
        r = srv.ctl('offline-list', 'alice@' + HOST, '--after', bad)
        assert r.returncode == 2 and '--after' in r.stderr, (bad, r)
    for args in (['--max', '3'], ['--after'], ['--limit', '5', '--after']):
        r = srv.ctl('offline-list', 'alice@' + HOST, *args)
        assert r.returncode == 2 and 'usage' in r.stderr, (args, r)
    for args in (['--limit', '0'], ['--after', 'a'], ['--match', 'a'], ['--limit'], ['--sort', 'x']):
        r = srv.ctl('registered-users', HOST, *args)
        assert r.returncode == 2, (args, r)


def test_count_and_pages(srv):
    names = ['page%02d' % i for i in range(11)]
    for n in names:
        srv.register(n, HOST, 'pw-' + n)
    everyone = ctl_json(srv, 'registered-users', HOST)['users']
    r = srv.ctl('registered-users-count', HOST)
    assert (r.returncode, r.stdout.strip()) == (0, str(len(everyone))), r.stderr
    assert len(everyone) == 4 + len(names)
    seen, after, pages = [], '', 0
    while True:
        page = ctl_json(srv, 'registered-users', HOST, '--after', after, '--limit', '4')
        pages += 1
        assert len(page['users']) <= 4
        seen += page['users']
        if page['next'] is None:
            break
        assert page['next'] == page['users'][-1]
        after = page['next']
    assert pages == 4  # 15 accounts: 4 + 4 + 4 + 3
    assert len(seen) == len(set(seen)) and sorted(seen) == sorted(everyone)
    # names containing a text, by pages too; LIKE's wildcards are plain text
    page = ctl_json(srv, 'registered-users', HOST, '--match', 'ge0', '--limit', '100')
    assert page['users'] == ['page%02d' % i for i in range(10)] and page['next'] is None
    page = ctl_json(srv, 'registered-users', HOST, '--match', 'ge0', '--after', 'page04', '--limit', '3')
    assert page['users'] == ['page05', 'page06', 'page07'] and page['next'] == 'page07'
    for wild in ('%', '_', 'page_1', '!'):
        assert ctl_json(srv, 'registered-users', HOST, '--match', wild, '--limit', '5')['users'] == []
    # a page that ends exactly at the last account says so on the next call
    page = ctl_json(srv, 'registered-users', HOST, '--after', sorted(everyone)[-2], '--limit', '1')
    assert page['users'] == [sorted(everyone)[-1]]


def test_read_while_stopped(srv):
    srv.ctl('send-message', 'bob@' + HOST, 'carol@' + HOST, 'kept for later')
    running = {c: srv.ctl(*c).stdout for c in (('get-roster', 'alice@' + HOST),
                                                ('offline-count', 'carol@' + HOST),
                                                ('registered-users-count', HOST))}
    srv.stop()
    try:
        for c, out in running.items():
            r = srv.ctl(*c)
            assert r.returncode == 0, (c, r.stderr)
            assert r.stdout == out, c
        data = ctl_json(srv, 'offline-list', 'carol@' + HOST)
        assert [m['body'] for m in data['messages']] == ['kept for later']
    finally:
        srv.start()
