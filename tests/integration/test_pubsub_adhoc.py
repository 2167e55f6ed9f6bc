"""Pubsub and PEP nodes administered with ad-hoc commands (XEP-0050) from
a slixmpp client (xep_0050): the commands (urn:parley:admin#pubsub-list,
-info, -delete, -purge) are listed to the host's admins only and refused
to others; they show what parleyctl shows, a delete and a purge reach the
subscribers; an owner of another host is not found; bad input is answered
with an error and changes nothing.  Nodes are made by raw clients."""
import asyncio

from parleytest import HOST, OTHER, login, logout, unique
from test_adhoc import admin_client, plain_client_plugins, run_command, submit_form
from test_muc_adhoc import fields, refused, table
from test_pubsub_ctl import SERVICE, connect, create, event, ok, publish, watched_node

CMD = 'urn:parley:admin#pubsub-'
NODES = ('list', 'info', 'delete', 'purge')


def lines(v):
    return v.splitlines() if isinstance(v, str) else list(v or [])


async def complete(c, node, form_fields):
    """execute, then submit with complete: the answer, or the IqError."""
    first = await asyncio.wait_for(c['xep_0050'].send_command(HOST, node), 10)
    return await asyncio.wait_for(c['xep_0050'].send_command(
        HOST, node, action='complete', sessionid=first['command']['sessionid'],
        payload=submit_form(c, form_fields)), 10)


def test_commands_are_for_admins_only(server, run):
    async def go():
        a = await admin_client(server)
        bob = await login(server, 'bob', resource=unique('r'))
        plain_client_plugins(bob)
        try:
            got = await asyncio.wait_for(a['xep_0050'].get_commands(HOST), 10)
            nodes = {i[1] for i in got['disco_items']['items']}
            for n in NODES:
                assert CMD + n in nodes, (n, nodes)
            got = await asyncio.wait_for(bob['xep_0050'].get_commands(HOST), 10)
            assert not [i for i in got['disco_items']['items'] if i[1].startswith(CMD)], got
            for n in NODES:
                await refused(asyncio.wait_for(bob['xep_0050'].send_command(HOST, CMD + n), 10),
                              'forbidden')
        finally:
            await logout(a, bob)
    run(go())


def test_list_and_info(server, run):
    bob, carol, node, subid = watched_node(server, 'adhoc-', 1)
    bob.close()

    async def go():
        a = await admin_client(server)
        try:
            for owner in (SERVICE, ''):     # none: the host's first service
                rows = [r for r in table(await run_command(a, CMD + 'list', {'owner': owner}))
                        if r['node'] == node]
                assert rows == [{'node': node, 'access_model': 'open', 'items': '1',
                                 'subscriptions': '1', 'owners': 'bob@' + HOST}], rows
            f = fields(await run_command(a, CMD + 'info', {'owner': SERVICE, 'node': node}))
            assert f['owner'] == SERVICE and f['node'] == node, f
            assert f['access_model'] == 'open' and f['deliver_payloads'] is True, f
            assert lines(f['affiliations']) == ['bob@%s: owner' % HOST], f
            assert lines(f['subscriptions']) == ['%s %s subscribed' % (carol.jid, subid)], f
            items = lines(f['items'])
            assert len(items) == 1 and items[0].startswith('i0 bob@%s/' % HOST), items
        finally:
            await logout(a)
    try:
        run(go())
    finally:
        carol.close()


def test_purge_and_delete(server, run):
    bob, carol, node, _ = watched_node(server, 'adhoc-gone-', 2)
    bob.close()
    answers = {}

    async def go():
        a = await admin_client(server)
        try:
            answers['purge'] = await complete(a, CMD + 'purge', {'owner': SERVICE, 'node': node})
            answers['delete'] = await complete(a, CMD + 'delete', {'owner': SERVICE, 'node': node})
        finally:
            await logout(a)
    try:
        run(go())
        assert '2 items removed' in answers['purge']['command']['notes'][0][1], answers
        assert 'deleted' in answers['delete']['command']['notes'][0][1], answers
        event(carol, 'purge', node)
        event(carol, 'delete', node)
    finally:
        carol.close()
    assert node not in ok(server.ctl('pubsub-list', SERVICE))


def test_bad_input_and_other_hosts(server, run):
    bob = connect(server, 'bob')
    node = unique('adhoc-kept-')
    try:
        create(bob, node)
        publish(bob, node, 'one', 'first')
    finally:
        bob.close()

    async def go():
        a = await admin_client(server)
        try:
            for n, form, condition in (
                    ('delete', {'owner': SERVICE, 'node': unique('none-')}, 'item-not-found'),
                    ('info', {'owner': SERVICE, 'node': unique('none-')}, 'item-not-found'),
                    ('purge', {'owner': 'pubsub.' + OTHER, 'node': node}, 'item-not-found'),
                    ('list', {'owner': 'dave@' + OTHER}, 'item-not-found'),
                    ('list', {'owner': 'no-such-service.example'}, 'item-not-found'),
                    ('delete', {'owner': 'bob@', 'node': node}, 'bad-request'),
                    ('delete', {'owner': SERVICE, 'node': ''}, 'bad-request'),
                    ('purge', {'owner': '', 'node': node}, 'bad-request')):
                await refused(complete(a, CMD + n, form), condition)
        finally:
            await logout(a)
    run(go())
    listed = [ln.split() for ln in ok(server.ctl('pubsub-list', SERVICE)).splitlines()]
    assert [node, 'open', '1', '0', 'bob@' + HOST] in listed, listed
