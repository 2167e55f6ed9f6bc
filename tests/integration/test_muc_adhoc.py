"""Chat rooms administered with ad-hoc commands (XEP-0050) from a slixmpp
client (xep_0050), on a parleyd whose main host runs the muc module with
carol as an admin of its service: the commands are listed to the host's
admins and the service's admins only and refused to others; a room created
is persistent and shown by parleyctl; affiliations reach the occupants
(an outcast is removed); a destroyed room tells its occupants and is gone;
bad input is answered with an error and changes nothing."""
import asyncio
import inspect
import json
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

import parleytest
from parleytest import HOST, OTHER, login, logout, unique
from test_adhoc import admin_client, plain_client_plugins, run_command, submit_form

CMD = 'urn:parley:admin#muc-'
NODES = ('list', 'info', 'create', 'destroy', 'set-affiliation')
SERVICE = 'conference.' + HOST
NS_DATA = 'jabber:x:data'
NS_MUC = 'http://jabber.org/protocol/muc'
NS_MUC_USER = 'http://jabber.org/protocol/muc#user'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """The usual test server, with carol as an admin of HOST's MUC service
    (she is no admin of the host)."""
    options = '{ admins: [carol@%s] }' % HOST
    if 'muc' in inspect.signature(parleytest.Parleyd).parameters:
        srv = parleytest.Parleyd(tmp_path_factory.mktemp('muc-adhoc'), muc=options)
    else:   # a Parleyd that does not write the muc module's line itself
        srv = parleytest.Parleyd(tmp_path_factory.mktemp('muc-adhoc'))
        text = srv.config.read_text()
        host_modules = '    modules:\n'
        assert host_modules in text
        srv.config.write_text(text.replace(host_modules, host_modules + '      muc: %s\n' % options, 1))
    srv.start_with_users()
    yield srv
    srv.finish()


def ctl(srv, *args):
    return srv.ctl(*args)


def ctl_ok(srv, *args):
    r = srv.ctl(*args)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


def info(srv, room):
    return json.loads(ctl_ok(srv, '--json', 'muc-info', room))


def affiliations(srv, room):
    return {a['jid']: (a['affiliation'], a['reason']) for a in info(srv, room)['affiliations']}


def new_room():
    return '%s@%s' % (unique('room'), SERVICE)


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


def note(answer):
    return answer['command']['notes'][0][1]


async def client(server, user):
    c = await login(server, user, resource=unique('r'))
    plain_client_plugins(c)
    c.presences = asyncio.Queue()
    c.add_event_handler('presence', c.presences.put_nowait)
    return c


async def presence_from(c, jid, timeout=10):
    """The next presence from jid (room/nick) as an ElementTree element."""
    async def wait():
        while True:
            p = await c.presences.get()
            if p['from'].full == jid:
                return p.xml
    return await asyncio.wait_for(wait(), timeout)


def user_x(p):
    x = p.find('{%s}x' % NS_MUC_USER)
    assert x is not None, ET.tostring(p)
    return x


def statuses(p):
    return {s.get('code') for s in user_x(p).findall('{%s}status' % NS_MUC_USER)}


async def enter(c, room, nick):
    """Enter room as nick; returns the self-presence."""
    p = c.make_presence(pto='%s/%s' % (room, nick))
    p.append(ET.fromstring("<x xmlns='%s'/>" % NS_MUC))
    p.send()
    got = await presence_from(c, '%s/%s' % (room, nick))
    assert got.get('type') is None, ET.tostring(got)
    assert '110' in statuses(got), ET.tostring(got)
    return got


def test_commands_are_for_admins_only(server, run):
    async def go():
        a = await admin_client(server)
        carol = await client(server, 'carol')
        bob = await client(server, 'bob')
        try:
            for c in (a, carol):
                got = await asyncio.wait_for(c['xep_0050'].get_commands(HOST), 10)
                nodes = {i[1] for i in got['disco_items']['items']}
                for n in NODES:
                    assert CMD + n in nodes, (c.boundjid, n, nodes)
            i = await asyncio.wait_for(carol['xep_0030'].get_info(jid=HOST, node=CMD + 'create'), 10)
            assert ('automation', 'command-node', None, 'Create a Chat Room') in \
                i['disco_info']['identities']
            # carol, a service admin only, sees no command of the host's own
            got = await asyncio.wait_for(carol['xep_0050'].get_commands(HOST), 10)
            assert 'http://jabber.org/protocol/admin#add-user' not in \
                {i[1] for i in got['disco_items']['items']}
            # bob sees none and may run none
            got = await asyncio.wait_for(bob['xep_0050'].get_commands(HOST), 10)
            assert not [i for i in got['disco_items']['items'] if i[1].startswith(CMD)], got
            for n in NODES:
                await refused(asyncio.wait_for(bob['xep_0050'].send_command(HOST, CMD + n), 10),
                              'forbidden')
            await refused(asyncio.wait_for(bob['xep_0050'].send_command(
                HOST, CMD + 'destroy', action='complete', sessionid='x',
                payload=submit_form(bob, {'room': new_room()})), 10), 'forbidden')
        finally:
            await logout(a, carol, bob)
    run(go())


def test_create_list_info_destroy(server, run):
    room = new_room()
    owner = 'bob@' + HOST

    async def go():
        a = await admin_client(server)
        bob = await client(server, 'bob')
        try:
            first = await asyncio.wait_for(a['xep_0050'].send_command(HOST, CMD + 'create'), 10)
            form = first['command']['form']
            types = {k: f['type'] for k, f in form.get_fields().items()}
            assert types['room'] == 'jid-single' and types['owner'] == 'jid-single', types
            assert SERVICE in form['instructions'], form['instructions']
            done = await asyncio.wait_for(a['xep_0050'].send_command(
                HOST, CMD + 'create', action='complete', sessionid=first['command']['sessionid'],
                payload=submit_form(a, {'room': room, 'owner': owner})), 10)
            assert done['command']['status'] == 'completed', done
            assert 'created' in note(done) and owner in note(done), done
            # answered after the commit: parleyctl sees a persistent room
            i = info(server, room)
            assert i['persistent'] is True and i['locked'] is False, i
            assert affiliations(server, room) == {owner: ('owner', '')}

            rows = [r for r in table(await run_command(a, CMD + 'list', None)) if r['jid'] == room]
            assert len(rows) == 1, rows
            assert rows[0]['occupants'] == '0' and rows[0]['persistent'] == '1', rows
            assert rows[0]['public'] in ('0', '1') and rows[0]['name'] in ('', None), rows

            await enter(bob, room, 'bobby')
            f = fields(await run_command(a, CMD + 'info', {'room': room}))
            assert f['room'] == room and f['persistent'] is True, f
            assert f['owners'] == [owner] and not f['members'], f
            assert f['occupants_count'] == '1', f
            occ = f['occupants']
            occ = occ.splitlines() if isinstance(occ, str) else occ
            assert len(occ) == 1 and occ[0].startswith('bobby: %s/' % owner), occ
            assert 'moderator' in occ[0] and 'owner' in occ[0], occ

            r = await run_command(a, CMD + 'destroy', {'room': room, 'reason': 'moving out'})
            assert 'destroyed' in note(r), r
            p = await presence_from(bob, room + '/bobby')
            assert p.get('type') == 'unavailable', ET.tostring(p)
            d = user_x(p).find('{%s}destroy' % NS_MUC_USER)
            assert d is not None and d.findtext('{%s}reason' % NS_MUC_USER) == 'moving out', \
                ET.tostring(p)
        finally:
            await logout(a, bob)
    run(go())
    r = ctl(server, 'muc-info', room)
    assert r.returncode == 1 and 'no room ' + room in r.stderr, (r.returncode, r.stderr)
    assert room not in ctl_ok(server, 'muc-list', HOST)


def test_affiliations_reach_occupants(server, run):
    room = new_room()
    ctl_ok(server, 'muc-create', room, 'alice@' + HOST)
    bob = 'bob@' + HOST

    async def go():
        a = await admin_client(server)
        b = await client(server, 'bob')
        try:
            first = await asyncio.wait_for(a['xep_0050'].send_command(HOST, CMD + 'set-affiliation'),
                                           10)
            form = first['command']['form'].get_fields()
            assert form['affiliation']['type'] == 'list-single', form['affiliation']
            assert {o['value'] for o in form['affiliation']['options']} == \
                {'owner', 'admin', 'member', 'outcast', 'none'}
            done = await asyncio.wait_for(a['xep_0050'].send_command(
                HOST, CMD + 'set-affiliation', action='complete',
                sessionid=first['command']['sessionid'],
                payload=submit_form(a, {'room': room, 'jid': bob, 'affiliation': 'member',
                                        'reason': 'a regular'})), 10)
            assert done['command']['status'] == 'completed', done
            assert affiliations(server, room)[bob] == ('member', 'a regular')

            await enter(b, room, 'bob')
            await run_command(a, CMD + 'set-affiliation',
                              {'room': room, 'jid': bob, 'affiliation': 'admin'})
            p = await presence_from(b, room + '/bob')
            item = user_x(p).find('{%s}item' % NS_MUC_USER)
            assert item.get('affiliation') == 'admin' and item.get('role') == 'moderator', \
                ET.tostring(p)

            await run_command(a, CMD + 'set-affiliation',
                              {'room': room, 'jid': bob, 'affiliation': 'outcast',
                               'reason': 'enough'})
            p = await presence_from(b, room + '/bob')
            assert p.get('type') == 'unavailable' and '301' in statuses(p), ET.tostring(p)
            assert affiliations(server, room)[bob] == ('outcast', 'enough')
            assert info(server, room)['occupants'] == []

            await run_command(a, CMD + 'set-affiliation',
                              {'room': room, 'jid': bob, 'affiliation': 'none'})
            assert bob not in affiliations(server, room)
        finally:
            await logout(a, b)
    run(go())
    ctl_ok(server, 'muc-destroy', room)


def test_service_admin_manages_rooms(server, run):
    room = new_room()

    async def go():
        c = await client(server, 'carol')
        try:
            await run_command(c, CMD + 'create', {'room': room})
            assert affiliations(server, room) == {}
            rows = table(await run_command(c, CMD + 'list', None))
            assert room in [r['jid'] for r in rows], rows
            await run_command(c, CMD + 'set-affiliation',
                              {'room': room, 'jid': 'erin@' + HOST, 'affiliation': 'owner'})
            assert affiliations(server, room) == {'erin@' + HOST: ('owner', '')}
            await run_command(c, CMD + 'destroy', {'room': room})
        finally:
            await logout(c)
    run(go())
    assert ctl(server, 'muc-info', room).returncode == 1


def test_bad_input_is_refused_and_changes_nothing(server, run):
    room = new_room()
    ctl_ok(server, 'muc-create', room, 'alice@' + HOST)
    before = ctl_ok(server, 'muc-info', room)
    fresh = new_room()

    async def go():
        a = await admin_client(server)
        try:
            # create: no room, not a room JID, a bad name, no such service,
            # the service of another host, a room that exists, a bad owner
            await refused(run_command(a, CMD + 'create', {'room': ''}), 'bad-request')
            await refused(run_command(a, CMD + 'create', {'room': SERVICE}), 'bad-request')
            text = await refused(run_command(a, CMD + 'create', {'room': 'a b@' + SERVICE}),
                                 'bad-request')
            assert 'a b' in text, text
            text = await refused(run_command(a, CMD + 'create', {'room': 'x@nope.' + HOST}),
                                 'item-not-found')
            assert 'no MUC service nope.' + HOST in text, text
            text = await refused(run_command(a, CMD + 'create', {'room': 'x@conference.' + OTHER}),
                                 'item-not-found')
            assert 'conference.' + OTHER in text, text
            text = await refused(run_command(a, CMD + 'create', {'room': room}), 'conflict')
            assert 'exists' in text, text
            await refused(run_command(a, CMD + 'create', {'room': fresh, 'owner': 'a@b/c'}),
                          'bad-request')
            # the others: no such room, a bad JID or affiliation
            text = await refused(run_command(a, CMD + 'info', {'room': fresh}), 'item-not-found')
            assert 'no room ' + fresh in text, text
            await refused(run_command(a, CMD + 'destroy', {'room': fresh}), 'item-not-found')
            await refused(run_command(a, CMD + 'set-affiliation', {
                'room': fresh, 'jid': 'bob@' + HOST, 'affiliation': 'member'}), 'item-not-found')
            await refused(run_command(a, CMD + 'set-affiliation', {
                'room': room, 'jid': 'bob@' + HOST, 'affiliation': 'king'}), 'bad-request')
            await refused(run_command(a, CMD + 'set-affiliation', {
                'room': room, 'jid': 'x@@y', 'affiliation': 'member'}), 'bad-request')
            await refused(run_command(a, CMD + 'set-affiliation', {
                'room': room, 'affiliation': 'member'}), 'bad-request')
        finally:
            await logout(a)
    run(go())
    assert ctl(server, 'muc-info', fresh).returncode == 1
    assert ctl_ok(server, 'muc-info', room) == before
    ctl_ok(server, 'muc-destroy', room)
