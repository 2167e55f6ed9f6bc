"""Shared roster groups managed with ad-hoc commands (XEP-0050) from a
slixmpp client (xep_0050), on a parleyd whose main host runs shared_roster
on its SQL store (SQLite by default): the commands are listed to the host's
admins only and refused to others; a group created with members reaches an
online member at once (roster push and presence), as member additions,
removals and the deletion do; srg-list and srg-info show what parleyctl
shows; bad input is answered with an error and changes nothing."""
import asyncio

import pytest
from slixmpp.exceptions import IqError

from parleytest import HOST, OTHER, login, logout, unique
from test_adhoc import admin_client, plain_client_plugins, run_command, submit_form
from test_shared_roster import (bare, ctl_ok, items, new_group, new_users, online, roster,
                                server)  # noqa: F401  (server: the fixture)

SRG = 'urn:parley:admin#srg-'
NODES = ('list', 'info', 'create', 'delete', 'user-add', 'user-del')
NS_DATA = 'jabber:x:data'


def groups_of(srv):
    return ctl_ok(srv, 'srg-list', HOST).split()


async def refused(coro, condition):
    with pytest.raises(IqError) as e:
        await coro
    assert e.value.condition == condition, (e.value.condition, e.value.text)
    return e.value.text


def fields(answer):
    return {k: v.get_value() for k, v in answer['command']['form'].get_fields().items()}


def table(answer):
    """The <item/> rows of a result form as dicts var -> value."""
    x = answer['command'].xml.find('{%s}x' % NS_DATA)
    rows = []
    for it in x.findall('{%s}item' % NS_DATA):
        rows.append({f.get('var'): f.findtext('{%s}value' % NS_DATA)
                     for f in it.findall('{%s}field' % NS_DATA)})
    return rows


def test_commands_are_for_admins_only(server, run):
    async def go():
        a = await admin_client(server)
        b = await login(server, 'bob')
        plain_client_plugins(b)
        try:
            got = await asyncio.wait_for(a['xep_0050'].get_commands(HOST), 10)
            nodes = {i[1] for i in got['disco_items']['items']}
            for n in NODES:
                assert SRG + n in nodes, (n, nodes)
            info = await asyncio.wait_for(a['xep_0030'].get_info(jid=HOST, node=SRG + 'create'),
                                          10)
            assert ('automation', 'command-node', None, 'Create a Shared Roster Group') in \
                info['disco_info']['identities']
            # bob sees none of them and may run none
            got = await asyncio.wait_for(b['xep_0050'].get_commands(HOST), 10)
            assert not [i for i in got['disco_items']['items'] if i[1].startswith(SRG)], got
            for n in NODES:
                await refused(asyncio.wait_for(b['xep_0050'].send_command(HOST, SRG + n), 10),
                              'forbidden')
        finally:
            await logout(a, b)
    run(go())


def test_create_with_members_reaches_online_members(server, run):
    u1, u2, u3 = new_users(server, 3, 'ah')
    g = unique('g')

    async def go():
        adm = await admin_client(server)
        c1, w1 = await online(server, u1)
        c2, w2 = await online(server, u2)
        try:
            assert items(await roster(c1)) == {}
            first = await asyncio.wait_for(adm['xep_0050'].send_command(HOST, SRG + 'create'),
                                           10)
            types = {k: f['type'] for k, f in first['command']['form'].get_fields().items()}
            assert types['group'] == 'text-single' and types['members'] == 'jid-multi', types
            assert types['displayed'] == 'text-multi' and types['name'] == 'text-single', types
            done = await asyncio.wait_for(adm['xep_0050'].send_command(
                HOST, SRG + 'create', action='complete', sessionid=first['command']['sessionid'],
                payload=submit_form(adm, {'group': g, 'name': 'Help desk',
                                          'description': 'first line',
                                          'members': [bare(u1), bare(u2), bare(u3)]})), 10)
            assert done['command']['status'] == 'completed', done
            assert 'created' in done['command']['notes'][0][1], done
            # the online members get each other (push, then presence)
            it = await w1.push(bare(u2))
            assert it['subscription'] == 'both' and list(it['groups']) == ['Help desk'], it
            it = await w1.push(bare(u3))
            assert it['subscription'] == 'both', it
            await w2.push(bare(u1))
            await w1.presence(bare(u2))
            await w2.presence(bare(u1))
            assert items(await roster(c1)) == {bare(u2): ('both', u2, ['Help desk'], None),
                                               bare(u3): ('both', u3, ['Help desk'], None)}
            # srg-list and srg-info as ad-hoc commands
            r = await run_command(adm, SRG + 'list', None)
            rows = [x for x in table(r) if x['group'] == g]
            assert rows == [{'group': g, 'name': 'Help desk', 'description': 'first line',
                             'members': '3'}], table(r)
            r = await run_command(adm, SRG + 'info', {'group': g})
            f = fields(r)
            assert f['group'] == g and f['name'] == 'Help desk', f
            assert f['description'] == 'first line', f
            assert sorted(f['members']) == sorted([bare(u1), bare(u2), bare(u3)]), f
            assert f['displayed'] in ([g], g), f
        finally:
            await logout(adm, c1, c2)
    run(go())
    info = ctl_ok(server, 'srg-info', HOST, g)
    assert 'name: Help desk' in info and 'description: first line' in info, info
    for u in (u1, u2, u3):
        assert bare(u) in info, info


def test_member_changes_and_delete_push_live(server, run):
    a, b, c, d = new_users(server, 4, 'ahm')
    g = new_group(server, (a, b), '--name', 'Crew')

    async def go():
        adm = await admin_client(server)
        ca, wa = await online(server, a)
        cc, wc = await online(server, c)
        try:
            assert set(items(await roster(ca))) == {bare(b)}
            assert items(await roster(cc)) == {}
            first = await asyncio.wait_for(adm['xep_0050'].send_command(HOST, SRG + 'user-add'),
                                           10)
            form = first['command']['form'].get_fields()
            assert form['group']['type'] == 'list-single', form['group']
            assert g in [o['value'] for o in form['group']['options']], form['group']
            assert form['members']['type'] == 'jid-multi'
            done = await asyncio.wait_for(adm['xep_0050'].send_command(
                HOST, SRG + 'user-add', action='complete', sessionid=first['command']['sessionid'],
                payload=submit_form(adm, {'group': g, 'members': [bare(c), bare(d)]})), 10)
            assert done['command']['status'] == 'completed', done
            it = await wa.push(bare(c))
            assert it['subscription'] == 'both' and list(it['groups']) == ['Crew'], it
            await wa.push(bare(d))
            await wc.push(bare(a))
            await wc.push(bare(b))
            await wc.presence(bare(a))
            await wa.presence(bare(c))
            assert set(items(await roster(cc))) == {bare(a), bare(b), bare(d)}

            await run_command(adm, SRG + 'user-del', {'group': g, 'members': [bare(c)]})
            it = await wa.push(bare(c))
            assert it['subscription'] == 'remove', it
            it = await wc.push(bare(a))
            assert it['subscription'] == 'remove', it
            await wa.presence(bare(c), 'unavailable')
            await wc.presence(bare(a), 'unavailable')
            assert items(await roster(cc)) == {}
            assert set(items(await roster(ca))) == {bare(b), bare(d)}

            r = await run_command(adm, SRG + 'delete', {'group': g})
            assert 'deleted' in r['command']['notes'][0][1], r
            got = {(await wa.push(bare(b)))['subscription'], (await wa.push(bare(d)))['subscription']}
            assert got == {'remove'}, got
            assert items(await roster(ca)) == {}
        finally:
            await logout(adm, ca, cc)
    run(go())
    assert g not in groups_of(server)


def test_special_members_through_the_booleans(server, run):
    g = unique('g')

    async def go():
        adm = await admin_client(server)
        try:
            await run_command(adm, SRG + 'create', {'group': g, 'all-users': '1'})
            f = fields(await run_command(adm, SRG + 'info', {'group': g}))
            assert f['all-users'] is True and f['online-users'] is False, f
            assert not f['members'], f
            await run_command(adm, SRG + 'user-add', {'group': g, 'online-users': '1'})
            await run_command(adm, SRG + 'user-del', {'group': g, 'all-users': '1'})
            f = fields(await run_command(adm, SRG + 'info', {'group': g}))
            assert f['all-users'] is False and f['online-users'] is True, f
        finally:
            await logout(adm)
    run(go())
    info = ctl_ok(server, 'srg-info', HOST, g)
    assert '@online@' in info and '@all@' not in info, info
    ctl_ok(server, 'srg-delete', HOST, g)


def test_bad_input_is_refused_and_changes_nothing(server, run):
    a, b, c = new_users(server, 3, 'ahb')
    g = new_group(server, (a,))
    before = ctl_ok(server, 'srg-info', HOST, g)
    fresh = unique('g')

    async def go():
        adm = await admin_client(server)
        try:
            # create: a bad JID, a JID of another host, no name, a name taken
            text = await refused(run_command(adm, SRG + 'create', {
                'group': fresh, 'members': [bare(b), 'not a jid@@']}), 'bad-request')
            assert 'not a jid@@' in text, text
            text = await refused(run_command(adm, SRG + 'create', {
                'group': fresh, 'members': ['dave@' + OTHER]}), 'bad-request')
            assert "group's host" in text, text
            await refused(run_command(adm, SRG + 'create', {'group': '', 'name': 'x'}),
                          'bad-request')
            await refused(run_command(adm, SRG + 'create', {'group': 'a,b'}), 'bad-request')
            text = await refused(run_command(adm, SRG + 'create', {
                'group': g, 'members': [bare(c)]}), 'conflict')
            assert 'exists' in text, text
            # members: unknown group, a bad JID among good ones, one already in
            text = await refused(run_command(adm, SRG + 'user-add', {
                'group': fresh, 'members': [bare(b)]}), 'item-not-found')
            assert 'no group' in text, text
            await refused(run_command(adm, SRG + 'user-add', {
                'group': g, 'members': [bare(b), 'x@y@z']}), 'bad-request')
            text = await refused(run_command(adm, SRG + 'user-add', {
                'group': g, 'members': [bare(b), bare(a)]}), 'conflict')
            assert 'already' in text, text
            await refused(run_command(adm, SRG + 'user-add', {'group': g}), 'bad-request')
            text = await refused(run_command(adm, SRG + 'user-del', {
                'group': g, 'members': [bare(a), bare(c)]}), 'item-not-found')
            assert 'not a member' in text, text
            # delete and info of a group that does not exist
            await refused(run_command(adm, SRG + 'delete', {'group': fresh}), 'item-not-found')
            await refused(run_command(adm, SRG + 'info', {'group': fresh}), 'item-not-found')
            # a non-admin's submit with a made-up session is forbidden too
            cb = await login(server, 'bob', resource=unique('r'))
            plain_client_plugins(cb)
            try:
                await refused(asyncio.wait_for(cb['xep_0050'].send_command(
                    HOST, SRG + 'delete', action='complete', sessionid='x',
                    payload=submit_form(cb, {'group': g})), 10), 'forbidden')
            finally:
                await logout(cb)
        finally:
            await logout(adm)
    run(go())
    assert fresh not in groups_of(server)
    assert ctl_ok(server, 'srg-info', HOST, g) == before
