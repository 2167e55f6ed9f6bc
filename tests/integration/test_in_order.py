"""In-order processing (RFC 6120 10.1): once the server answers a stanza of
a stream, every stanza the stream sent before it has been handled.  An iq
set that waits on the store is answered before a ping sent after it, and a
message to an offline user is stored before anything sent after it is
answered (the crash test in test_offline.py shows it survives a SIGKILL).
A subscription approval or a roster remove that changes a local contact's
roster too is written on both sides before a later stanza is answered."""
import time

from parleytest import HOST, NS_CLIENT, RawClient, q, tostr, unique


def answers_in_order(c, ids, timeout=10):
    """The ids of the iq answers among ids, in the order they came."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < len(ids):
        el = c.next(max(0.1, deadline - time.monotonic()))
        assert el is not None, 'stream closed after %s' % got
        if el.tag == q(NS_CLIENT, 'iq') and el.get('id') in ids:
            assert el.get('type') == 'result', tostr(el)
            got.append(el.get('id'))
    return got


def ping(iq_id):
    return "<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % (iq_id, HOST)


def login(server, user='alice'):
    c = RawClient(server.port)
    c.login(user, server.password(user), resource=unique('o-'))
    return c


def test_vcard_set_answered_before_a_later_ping(server):
    c = login(server)
    try:
        c.send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>%s</FN></vCard></iq>"
               % unique('order-') + ping('p1'))
        assert answers_in_order(c, ['v1', 'p1']) == ['v1', 'p1']
    finally:
        c.close()


def test_private_and_roster_sets_answered_in_order(server):
    c = login(server)
    try:
        c.send("<iq type='set' id='s1'><query xmlns='jabber:iq:private'>"
               "<n xmlns='parley:test:order'>%s</n></query></iq>" % unique('x')
               + ping('p1')
               + "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'>"
                 "<item jid='%s@%s' name='order'/></query></iq>" % (unique('c'), HOST)
               + ping('p2'))
        assert answers_in_order(c, ['s1', 'p1', 's2', 'p2']) == ['s1', 'p1', 's2', 'p2']
    finally:
        c.close()


def test_offline_message_stored_before_a_later_ping_is_answered(server):
    user = unique('ord')
    server.register(user, HOST, 'order-pw')
    c = login(server)
    try:
        c.send(''.join("<message to='%s@%s' type='chat' id='m%d'><body>order %d</body></message>"
                       % (user, HOST, i, i) for i in range(50)) + ping('p1'))
        assert answers_in_order(c, ['p1']) == ['p1']
        # read from outside the moment the answer came: all of them are there
        assert server.db_rows('offline_messages', user) == 50
    finally:
        c.close()


def test_messages_to_an_online_user_are_not_held(server):
    """Nothing waits when nothing is stored: a message delivered to an
    online user and a ping are answered at once, in order."""
    a, b = login(server, 'alice'), login(server, 'bob')
    try:
        body = unique('live-')
        a.send("<message to='bob@%s' type='chat'><body>%s</body></message>" % (HOST, body)
               + ping('p1'))
        assert answers_in_order(a, ['p1']) == ['p1']
        b.wait_message(body)
    finally:
        a.close()
        b.close()


def test_send_message_returns_after_the_offline_copy_is_stored(server):
    """parleyctl send-message to a user who is away returns only once the
    message is committed: each time it returns, the row is there."""
    user = unique('ctlord')
    server.register(user, HOST, 'order-pw')
    for i in range(20):
        r = server.ctl('send-message', 'admin@' + HOST, '%s@%s' % (user, HOST), 'stored %d' % i)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert server.db_rows('offline_messages', user) == i + 1


def test_approvals_written_before_a_later_ping_is_answered(server):
    """An approval of a subscription request changes two rosters, the
    approver's and the requester's (RFC 6121 §3.1.5): a ping sent right
    after a burst of approvals is answered only once every row is written."""
    owner = unique('appr')
    server.register(owner, HOST, 'order-pw')
    contacts = [unique('req') for _ in range(10)]
    insert = ("INSERT INTO roster_items (server_host, username, jid, subscription, ask_out,"
              " ask_in, approved) VALUES (?, ?, ?, 'N', ?, ?, 0)")
    for x in contacts:
        server.register(x, HOST, 'order-pw')
        # x asked to see owner's presence and waits for the answer
        server.db_query(insert, (HOST, owner, '%s@%s' % (x, HOST), 0, 1))
        server.db_query(insert, (HOST, x, '%s@%s' % (owner, HOST), 1, 0))
    c = login(server, owner)
    try:
        c.send(''.join("<presence to='%s@%s' type='subscribed'/>" % (x, HOST) for x in contacts)
               + ping('p1'))
        assert answers_in_order(c, ['p1']) == ['p1']
        # read from outside the moment the answer came: both sides are written
        rows = server.db_query('SELECT jid, subscription, ask_in FROM roster_items'
                               ' WHERE server_host = ? AND username = ?', (HOST, owner))
        assert sorted(rows) == sorted(('%s@%s' % (x, HOST), 'F', 0) for x in contacts)
        for x in contacts:
            rows = server.db_query('SELECT jid, subscription, ask_out FROM roster_items'
                                   ' WHERE server_host = ? AND username = ?', (HOST, x))
            assert rows == [('%s@%s' % (owner, HOST), 'T', 0)], (x, rows)
    finally:
        c.close()


def test_remove_cancellations_written_before_a_later_ping_is_answered(server):
    """Removing a contact ends the subscriptions both ways (RFC 6121
    §2.5.2), which changes the contact's roster too: a ping sent right
    after the remove is answered only once the contact's row is written,
    and after the remove's own answer."""
    owner, contact = unique('rmo'), unique('rmc')
    server.register(owner, HOST, 'order-pw')
    server.register(contact, HOST, 'order-pw')
    insert = ("INSERT INTO roster_items (server_host, username, jid, subscription, ask_out,"
              " ask_in, approved) VALUES (?, ?, ?, 'B', 0, 0, 0)")
    server.db_query(insert, (HOST, owner, '%s@%s' % (contact, HOST)))
    server.db_query(insert, (HOST, contact, '%s@%s' % (owner, HOST)))
    c = login(server, owner)
    try:
        c.send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
               "<item jid='%s@%s' subscription='remove'/></query></iq>" % (contact, HOST)
               + ping('p1'))
        assert answers_in_order(c, ['r1', 'p1']) == ['r1', 'p1']
        rows = server.db_query('SELECT subscription, ask_out, ask_in FROM roster_items'
                               ' WHERE server_host = ? AND username = ? AND jid = ?',
                               (HOST, contact, '%s@%s' % (owner, HOST)))
        assert rows in ([], [('N', 0, 0)]), rows
    finally:
        c.close()
