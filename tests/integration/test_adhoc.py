"""Ad-hoc commands (XEP-0050) and service administration (XEP-0133) from a
slixmpp client with its xep_0050 plugin: discovery, admin-only commands
(<forbidden/> for others), sessions, cancel; accounts, sessions and
statistics; announcements to online and to all users (offline storage);
the message of the day at login."""
import asyncio

import pytest
from slixmpp.exceptions import IqError

from parleytest import HOST, OTHER, RawClient, login, logout, next_message, unique

NS_COMMANDS = 'http://jabber.org/protocol/commands'
ADMIN = 'http://jabber.org/protocol/admin#'


async def admin_client(server, resource=None):
    c = await login(server, 'alice', resource=resource or unique('admin'))
    for p in ('xep_0004', 'xep_0030', 'xep_0050'):
        c.register_plugin(p)
    return c


def plain_client_plugins(c):
    for p in ('xep_0004', 'xep_0030', 'xep_0050'):
        c.register_plugin(p)


def submit_form(c, fields):
    form = c['xep_0004'].make_form(ftype='submit')
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form


async def run_command(c, node, fields, host=HOST):
    """execute, then submit fields with complete; returns the last answer."""
    first = await asyncio.wait_for(c['xep_0050'].send_command(host, node), 10)
    cmd = first['command']
    if fields is None:      # a command without a form completes at once
        assert cmd['status'] == 'completed', first
        return first
    assert cmd['status'] == 'executing', first
    sid = cmd['sessionid']
    assert sid
    done = await asyncio.wait_for(c['xep_0050'].send_command(
        host, node, action='complete', payload=submit_form(c, fields), sessionid=sid), 10)
    assert done['command']['status'] == 'completed', done
    assert done['command']['sessionid'] == sid
    return done


def result_values(answer, var):
    form = answer['command']['form']
    field = form.get_fields()[var]
    v = field.get_value()
    return v


def test_disco_lists_admin_commands_only_to_admins(server, run):
    async def go():
        a = await admin_client(server)
        b = await login(server, 'bob')
        plain_client_plugins(b)
        try:
            info = await asyncio.wait_for(a['xep_0030'].get_info(jid=HOST), 10)
            assert NS_COMMANDS in info['disco_info']['features']
            items = await asyncio.wait_for(a['xep_0050'].get_commands(HOST), 10)
            nodes = {i[1] for i in items['disco_items']['items']}
            for n in ('add-user', 'delete-user', 'change-user-password', 'end-user-session',
                      'get-registered-users-num', 'get-online-users-num', 'get-registered-users-list',
                      'get-online-users-list', 'announce', 'set-motd', 'edit-motd', 'delete-motd'):
                assert ADMIN + n in nodes, (n, nodes)
            assert 'urn:parley:admin#stats' in nodes
            info = await asyncio.wait_for(a['xep_0030'].get_info(jid=HOST, node=ADMIN + 'add-user'), 10)
            assert ('automation', 'command-node', None, 'Add a User') in info['disco_info']['identities']
            # bob is no admin: an empty list, and forbidden when he tries
            items = await asyncio.wait_for(b['xep_0050'].get_commands(HOST), 10)
            assert not items['disco_items']['items'], items
            with pytest.raises(IqError) as e:
                await asyncio.wait_for(b['xep_0050'].send_command(HOST, ADMIN + 'add-user'), 10)
            assert e.value.condition == 'forbidden'
            with pytest.raises(IqError) as e:
                await asyncio.wait_for(a['xep_0050'].send_command(HOST, ADMIN + 'no-such'), 10)
            assert e.value.condition == 'item-not-found'
        finally:
            await logout(a, b)
    run(go())


def test_add_change_delete_user(server, run):
    user = unique('adhoc')

    async def go():
        a = await admin_client(server)
        try:
            await run_command(a, ADMIN + 'add-user', {
                'accountjid': '%s@%s' % (user, HOST), 'password': 'first-pw',
                'password-verify': 'first-pw'})
            assert server.ctl('check-password', user, HOST, input='first-pw\n').returncode == 0
            # again: conflict
            with pytest.raises(IqError) as e:
                await run_command(a, ADMIN + 'add-user', {
                    'accountjid': '%s@%s' % (user, HOST), 'password': 'x-pw',
                    'password-verify': 'x-pw'})
            assert e.value.condition == 'conflict'
            # a JID of another host is refused
            with pytest.raises(IqError) as e:
                await run_command(a, ADMIN + 'add-user', {
                    'accountjid': '%s@%s' % (user, OTHER), 'password': 'x-pw',
                    'password-verify': 'x-pw'})
            assert e.value.condition == 'bad-request'
            await run_command(a, ADMIN + 'change-user-password', {
                'accountjid': '%s@%s' % (user, HOST), 'password': 'second-pw'})
            assert server.ctl('check-password', user, HOST, input='second-pw\n').returncode == 0
            assert server.ctl('check-password', user, HOST, input='first-pw\n').returncode == 1
            c = await login(server, user, password='second-pw', resource='victim')
            await run_command(a, ADMIN + 'delete-user', {'accountjids': ['%s@%s' % (user, HOST)]})
            assert server.ctl('user-exists', user, HOST).returncode == 1
            for _ in range(100):
                if '%s@%s/victim' % (user, HOST) not in server.ctl('connected-users').stdout:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError('the removed user is still connected')
            try:
                c.abort()
            except Exception:
                pass
        finally:
            await logout(a)
    run(go())


def test_session_rules(server, run):
    async def go():
        a = await admin_client(server)
        try:
            first = await asyncio.wait_for(a['xep_0050'].send_command(HOST, ADMIN + 'add-user'), 10)
            sid = first['command']['sessionid']
            actions = first['command']['actions']
            assert 'complete' in actions, first
            # a made-up session id
            with pytest.raises(IqError) as e:
                await asyncio.wait_for(a['xep_0050'].send_command(
                    HOST, ADMIN + 'add-user', action='complete', sessionid='nope',
                    payload=submit_form(a, {'accountjid': 'x@' + HOST})), 10)
            assert e.value.condition == 'bad-request'
            assert e.value.iq.xml.find('.//{%s}bad-sessionid' % NS_COMMANDS) is not None
            # prev is not offered
            with pytest.raises(IqError) as e:
                await asyncio.wait_for(a['xep_0050'].send_command(
                    HOST, ADMIN + 'add-user', action='prev', sessionid=sid), 10)
            assert e.value.condition == 'bad-request'
            # cancel ends it; the session id is gone then
            c = await asyncio.wait_for(a['xep_0050'].send_command(
                HOST, ADMIN + 'add-user', action='cancel', sessionid=sid), 10)
            assert c['command']['status'] == 'canceled'
            with pytest.raises(IqError) as e:
                await asyncio.wait_for(a['xep_0050'].send_command(
                    HOST, ADMIN + 'add-user', action='complete', sessionid=sid,
                    payload=submit_form(a, {'accountjid': 'x@' + HOST, 'password': 'p',
                                            'password-verify': 'p'})), 10)
            assert e.value.condition == 'bad-request'
            assert server.ctl('user-exists', 'x', HOST).returncode == 1
        finally:
            await logout(a)
    run(go())


def test_numbers_lists_and_stats(server, run):
    async def go():
        a = await admin_client(server)
        b = await login(server, 'bob', resource='listed')
        try:
            r = await run_command(a, ADMIN + 'get-registered-users-num', None)
            n = int(result_values(r, 'registeredusersnum'))
            listed = server.ctl('--json', 'registered-users', HOST)
            import json
            assert n == json.loads(listed.stdout)['count']
            r = await run_command(a, ADMIN + 'get-registered-users-list', None)
            jids = result_values(r, 'registereduserjids')
            assert 'alice@%s' % HOST in jids and 'bob@%s' % HOST in jids
            assert not any(j.endswith('@' + OTHER) for j in jids)
            r = await run_command(a, ADMIN + 'get-online-users-num', None)
            assert int(result_values(r, 'onlineusersnum')) >= 2
            r = await run_command(a, ADMIN + 'get-online-users-list', None)
            online = result_values(r, 'onlineuserjids')
            assert 'alice@%s' % HOST in online and 'bob@%s' % HOST in online, online
            r = await run_command(a, ADMIN + 'get-active-users-num', None)
            assert int(result_values(r, 'activeusersnum')) >= 2
            r = await run_command(a, 'urn:parley:admin#stats', None)
            assert int(result_values(r, 'uptime')) >= 0
            assert int(result_values(r, 'stanzas-in-iq')) > 0
            assert int(result_values(r, 'registeredusersnum')) == n
        finally:
            await logout(a, b)
    run(go())


def _run_first(c, node):
    return asyncio.wait_for(c['xep_0050'].send_command(HOST, node), 10)


def test_end_user_session(server, run):
    async def go():
        a = await admin_client(server)
        try:
            c = RawClient(server.port)
            jc = c.login('carol', server.password('carol'), resource='ended')
            await run_command(a, ADMIN + 'end-user-session', {'accountjids': [jc]})
            assert c.stream_error(timeout=10) == 'policy-violation'
            c.close()
        finally:
            await logout(a)
    run(go())


def test_announce_to_online_users(server, run):
    async def go():
        a = await admin_client(server)
        b = await login(server, 'bob', resource='hears')
        d = await login(server, 'dave', host=OTHER, resource='elsewhere')
        try:
            body = unique('announce-')
            r = await run_command(a, ADMIN + 'announce', {'subject': 'Maintenance',
                                                          'announcement': [body, '', 'second line']})
            assert 'Sent to' in r['command']['notes'][0][1], r
            m = await next_message(b, pred=lambda m: body in m['body'])
            assert m['from'].full == HOST and m['subject'] == 'Maintenance'
            # an empty line is kept (XEP-0004 §3.3: text-multi)
            assert m['body'] == body + '\n\nsecond line'
            # other hosts are not told
            with pytest.raises(asyncio.TimeoutError):
                await next_message(d, timeout=1, pred=lambda m: body in m['body'])
        finally:
            await logout(a, b, d)
    run(go())


def test_announce_to_all_users_reaches_offline_ones(server, run):
    user = unique('away')
    server.register(user, HOST, 'away-pw')

    async def go():
        a = await admin_client(server)
        b = await login(server, 'bob', resource='online')
        try:
            body = unique('to-all-')
            r = await run_command(a, 'urn:parley:admin#announce-all', {'announcement': body})
            assert 'Sent to' in r['command']['notes'][0][1], r
            m = await next_message(b, pred=lambda m: body in m['body'])
            assert m['from'].full == HOST
        finally:
            await logout(a, b)
        # the user who was offline gets it at login, from offline storage
        c = await login(server, user, password='away-pw')
        try:
            m = await next_message(c, pred=lambda m: body in m['body'])
            assert m['from'].full == HOST
        finally:
            await logout(c)
    run(go())


def test_motd(fresh_server, run):
    srv = fresh_server

    async def go():
        a = await admin_client(srv)
        try:
            motd = unique('motd-')
            await run_command(a, ADMIN + 'set-motd', {'motd': [motd, '', 'be nice']})
            c = await login(srv, 'bob', resource='first')
            m = await next_message(c, pred=lambda m: motd in m['body'])
            assert m['from'].full == HOST and m['body'] == motd + '\n\nbe nice'
            # once per session: another presence does not repeat it
            c.send_presence(pstatus='still here')
            with pytest.raises(asyncio.TimeoutError):
                await next_message(c, timeout=1, pred=lambda m: motd in m['body'])
            await logout(c)
            # edit-motd shows the current one
            first = await _run_first(a, ADMIN + 'edit-motd')
            values = first['command']['form'].get_fields()['motd'].get_value()
            assert values == [motd, '', 'be nice'] or values == motd + '\n\nbe nice', values
            await asyncio.wait_for(a['xep_0050'].send_command(
                HOST, ADMIN + 'edit-motd', action='cancel', sessionid=first['command']['sessionid']), 10)
            return motd
        finally:
            await logout(a)
    motd = run(go())

    # kept in the store: after a restart it is still shown
    srv.stop()
    srv.start()

    async def after():
        c = await login(srv, 'erin')
        try:
            m = await next_message(c, pred=lambda m: motd in m['body'])
            assert m['from'].full == HOST
        finally:
            await logout(c)
        a = await admin_client(srv)
        try:
            r = await asyncio.wait_for(a['xep_0050'].send_command(HOST, ADMIN + 'delete-motd'), 10)
            assert r['command']['status'] == 'completed', r
        finally:
            await logout(a)
        c = await login(srv, 'carol')
        try:
            with pytest.raises(asyncio.TimeoutError):
                await next_message(c, timeout=1, pred=lambda m: motd in m['body'])
        finally:
            await logout(c)
    run(after())
