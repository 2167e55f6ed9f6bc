"""parleyctl's publish-subscribe commands against a running parleyd:
pubsub-list HOST|SERVICE|USER@HOST, pubsub-info OWNER NODE, pubsub-delete
OWNER NODE and pubsub-purge OWNER NODE, with the exit codes of the MUC
commands (0 done, 1 no such service or node, 2 malformed arguments).
Nodes are made and watched by raw clients; what a command did is checked
over XMPP."""
import json

from parleytest import HOST, NS_CLIENT, RawClient, q, stanza_error, tostr, unique

SERVICE = 'pubsub.' + HOST
NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_PUBSUB_OWNER = NS_PUBSUB + '#owner'
NS_PUBSUB_EVENT = NS_PUBSUB + '#event'


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def fails(r, code):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip(), 'no message on stderr'
    return r.stderr


def connect(server, user):
    c = RawClient(server.port)
    c.login(user, server.password(user))
    return c


def iq_ok(c, typ, payload, to=None):
    r = c.iq(typ, payload, to=to)
    assert r.get('type') == 'result', tostr(r)
    return r


def create(c, node, to=SERVICE):
    iq_ok(c, 'set', "<pubsub xmlns='%s'><create node='%s'/></pubsub>" % (NS_PUBSUB, node), to=to)


def publish(c, node, item_id, text, to=SERVICE):
    iq_ok(c, 'set', "<pubsub xmlns='%s'><publish node='%s'><item id='%s'><entry xmlns='urn:test'>%s</entry>"
          "</item></publish></pubsub>" % (NS_PUBSUB, node, item_id, text), to=to)


def subscribe(c, node, to=SERVICE):
    r = iq_ok(c, 'set', "<pubsub xmlns='%s'><subscribe node='%s' jid='%s'/></pubsub>"
              % (NS_PUBSUB, node, c.jid), to=to)
    return r.find('.//' + q(NS_PUBSUB, 'subscription')).get('subid')


def items(c, node, to=SERVICE):
    return c.iq('get', "<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PUBSUB, node), to=to)


def event(c, what, node, frm=SERVICE):
    """The next notification with <what node=node/> (or items with a
    retract/purge inside) from frm."""
    def match(e):
        if e.tag != q(NS_CLIENT, 'message') or e.get('from') != frm:
            return False
        ev = e.find(q(NS_PUBSUB_EVENT, 'event'))
        if ev is None:
            return False
        el = ev.find(q(NS_PUBSUB_EVENT, what))
        return el is not None and el.get('node') == node
    return c.wait_for(match, timeout=5, what='%s notification of %s' % (what, node))


def watched_node(server, prefix, nitems):
    """A node of bob's on the service with nitems items and carol
    subscribed: (bob, carol, node, carol's subid); the caller closes the
    clients."""
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    node = unique(prefix)
    create(bob, node)
    for i in range(nitems):
        publish(bob, node, 'i%d' % i, 'text %d' % i)
    return bob, carol, node, subscribe(carol, node)


def test_help_lists_the_pubsub_commands(server):
    out = ok(server.ctl('help'))
    for cmd in ('pubsub-list', 'pubsub-info', 'pubsub-delete', 'pubsub-purge'):
        assert cmd in out, (cmd, out)


def test_list_a_service(server):
    bob, carol, node, _ = watched_node(server, 'news-', 2)
    try:
        for owner in (SERVICE, HOST):  # a host stands for its first service
            out = ok(server.ctl('pubsub-list', owner))
            line = [ln for ln in out.splitlines() if ln.split()[:1] == [node]]
            assert line, out
            fields = line[0].split()
            assert fields[1:5] == ['open', '2', '1', 'bob@' + HOST], line
        listed = json.loads(ok(server.ctl('--json', 'pubsub-list', SERVICE)))
        mine = [n for n in listed if n['node'] == node]
        assert mine == [{'node': node, 'owner': SERVICE, 'access_model': 'open', 'items': 2,
                         'subscriptions': 1, 'owners': ['bob@' + HOST]}], listed
        names = [n['node'] for n in listed]
        assert names == sorted(names), names
    finally:
        bob.close()
        carol.close()


def test_list_and_info_of_pep(server):
    erin = connect(server, 'erin')
    try:
        node = unique('urn:test:mood-')
        publish(erin, node, 'current', 'happy', to=None)
        listed = json.loads(ok(server.ctl('--json', 'pubsub-list', 'erin@' + HOST)))
        mine = [n for n in listed if n['node'] == node]
        assert mine and mine[0]['access_model'] == 'presence', listed
        assert mine[0]['owners'] == ['erin@' + HOST] and mine[0]['items'] == 1, listed
        out = ok(server.ctl('pubsub-info', 'erin@' + HOST, node))
        assert 'access_model: presence' in out, out
        assert 'current' in out, out
        # another account's PEP is its own
        assert node not in ok(server.ctl('pubsub-list', 'bob@' + HOST))
    finally:
        erin.close()


def test_info(server):
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    try:
        node = unique('info-')
        create(bob, node)
        publish(bob, node, 'it1', 'x' * 100)
        subid = subscribe(carol, node)
        out = ok(server.ctl('pubsub-info', SERVICE, node))
        assert 'node: %s' % node in out, out
        assert 'access_model: open' in out, out
        assert 'max_items: ' in out and 'deliver_payloads: true' in out, out
        assert 'bob@%s\towner' % HOST in out, out
        assert '%s\t%s\tsubscribed' % (carol.jid, subid) in out, out
        item = [ln for ln in out.splitlines() if ln.startswith('  it1\t')]
        assert item, out
        it_id, publisher, published, size = item[0].strip().split('\t')
        assert publisher.startswith('bob@' + HOST), item
        assert published.endswith('Z') and int(size) > 100, item
        info = json.loads(ok(server.ctl('--json', 'pubsub-info', SERVICE, node)))
        assert info['owner'] == SERVICE and info['node'] == node, info
        assert info['config']['access_model'] == 'open', info
        assert info['config']['deliver_notifications'] is True, info
        assert {'jid': 'bob@' + HOST, 'affiliation': 'owner'} in info['affiliations'], info
        assert info['subscriptions'] == [{'jid': carol.jid, 'subid': subid, 'state': 'subscribed'}], info
        assert [i['id'] for i in info['items']] == ['it1'], info
        assert info['items'][0]['payload_size'] == int(size), info
    finally:
        bob.close()
        carol.close()


def test_purge(server):
    bob, carol, node, _ = watched_node(server, 'purge-', 3)
    try:
        out = ok(server.ctl('pubsub-purge', SERVICE, node))
        assert '3 items removed' in out, out
        event(carol, 'purge', node)
        r = items(bob, node)
        assert r.get('type') == 'result', tostr(r)
        assert r.findall('.//' + q(NS_PUBSUB, 'item')) == [], tostr(r)
        assert json.loads(ok(server.ctl('--json', 'pubsub-info', SERVICE, node)))['items'] == []
        # the node stays: publishing goes on
        publish(bob, node, 'after', 'again')
    finally:
        bob.close()
        carol.close()


def test_delete_notifies_the_subscribers(server):
    bob, carol, node, _ = watched_node(server, 'delete-', 1)
    try:
        out = ok(server.ctl('pubsub-delete', SERVICE, node))
        assert node in out, out
        event(carol, 'delete', node)
        assert stanza_error(items(bob, node)) == 'item-not-found'
        assert node not in ok(server.ctl('pubsub-list', SERVICE))
        fails(server.ctl('pubsub-delete', SERVICE, node), 1)
        fails(server.ctl('pubsub-info', SERVICE, node), 1)
        # the name is free again
        create(bob, node)
    finally:
        bob.close()
        carol.close()


def test_delete_a_pep_node(server):
    erin = connect(server, 'erin')
    try:
        node = unique('urn:test:gone-')
        publish(erin, node, 'current', 'text', to=None)
        subscribe(erin, node, to=None)
        ok(server.ctl('pubsub-delete', 'erin@' + HOST, node))
        # its subscribers hear of it
        event(erin, 'delete', node, frm='erin@' + HOST)
        assert node not in ok(server.ctl('pubsub-list', 'erin@' + HOST))
    finally:
        erin.close()


def test_errors_and_exit_codes(server):
    node = unique('none-')
    # no such service, host, node or account domain: 1
    fails(server.ctl('pubsub-list', 'no-such-service.example'), 1)
    fails(server.ctl('pubsub-info', SERVICE, node), 1)
    fails(server.ctl('pubsub-purge', SERVICE, node), 1)
    fails(server.ctl('pubsub-delete', SERVICE, node), 1)
    fails(server.ctl('pubsub-info', 'pubsub.no-such-host.example', node), 1)
    fails(server.ctl('pubsub-list', 'bob@no-such-host.example'), 1)
    # a host is no node owner for info and the changes
    fails(server.ctl('pubsub-info', HOST, node), 1)
    # malformed arguments: 2
    for args in (('pubsub-list', 'bob@'), ('pubsub-list', '@' + HOST), ('pubsub-list', SERVICE + '/res'),
                 ('pubsub-delete', SERVICE, ''), ('pubsub-list',), ('pubsub-info', SERVICE),
                 ('pubsub-purge', SERVICE, 'a', 'b'), ('--json', 'pubsub-delete', SERVICE, 'a')):
        fails(server.ctl(*args), 2)


def test_delete_is_stored(fresh_server):
    c = connect(fresh_server, 'bob')
    try:
        kept, gone = unique('kept-'), unique('gone-')
        create(c, kept)
        create(c, gone)
        publish(c, kept, 'k', 'text')
    finally:
        c.close()
    ok(fresh_server.ctl('pubsub-delete', SERVICE, gone))
    ok(fresh_server.ctl('pubsub-purge', SERVICE, kept))
    assert fresh_server.stop() == 0
    fresh_server.start()
    listed = {n['node']: n for n in json.loads(ok(fresh_server.ctl('--json', 'pubsub-list', SERVICE)))}
    assert gone not in listed, listed
    assert listed[kept]['items'] == 0, listed
