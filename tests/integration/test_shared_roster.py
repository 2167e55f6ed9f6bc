"""Shared roster groups: a member's roster holds the other members (subscription
both, the group's name as roster group) without anything stored in the
personal roster; presence flows between online members as if they were
subscribed; membership changes reach connected users at once (roster pushes,
presence, unavailable); a shared contact cannot be removed; the roster version
follows the groups; parleyctl srg-* manage the groups online and offline.

The clients are slixmpp clients.  Every test makes its own users and groups,
so the tests do not depend on each other."""
import asyncio
import time

import pytest

import parleytest
from parleytest import HOST, OTHER, login, logout, iq, unique

NS_ROSTER = 'jabber:iq:roster'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'


def q(tag):
    return '{%s}%s' % (NS_ROSTER, tag)


def start(tmp_path_factory, name):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp(name))
    srv.enable_module('shared_roster')
    srv.start_with_users()
    return srv


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = start(tmp_path_factory, 'parley-srg')
    yield srv
    srv.finish()


@pytest.fixture
def own_server(tmp_path_factory):
    srv = start(tmp_path_factory, 'parley-srg-own')
    yield srv
    srv.finish()


def ctl_ok(srv, *args):
    r = srv.ctl(*args)
    assert r.returncode == 0, 'parleyctl %s: exit %s: %s %s' % (args, r.returncode, r.stdout,
                                                              r.stderr)
    return r.stdout


def new_users(srv, n, prefix='s'):
    names = [unique(prefix) for _ in range(n)]
    for u in names:
        srv.register(u, HOST, 'pw-' + u)
    return names


def bare(u):
    return '%s@%s' % (u, HOST)


def new_group(srv, members=(), *opts):
    g = unique('g')
    ctl_ok(srv, 'srg-create', HOST, g, *opts)
    for m in members:
        ctl_ok(srv, 'srg-user-add', bare(m), HOST, g)
    return g


class Watch:
    """A slixmpp client with every presence and roster push it receives
    queued for the test."""

    def __init__(self, client):
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import StanzaPath
        self.c = client
        self.presences = []
        self.pushes = []
        self.cond = asyncio.Event()

        def on_presence(p):
            self.presences.append(p)
            self.cond.set()

        def on_roster(iq_):
            if iq_['type'] == 'set':
                self.pushes.append(iq_)
                self.cond.set()
        client.register_handler(Callback('test presence', StanzaPath('presence'), on_presence))
        client.add_event_handler('roster_update', on_roster)

    async def wait(self, what, pred, pool, timeout=8):
        deadline = time.monotonic() + timeout
        while True:
            for x in pool:
                if pred(x):
                    pool.remove(x)
                    return x
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no %s within %ss; got presences %s, pushes %s'
                                     % (what, timeout, [str(p) for p in self.presences],
                                        [str(p) for p in self.pushes]))
            self.cond.clear()
            try:
                await asyncio.wait_for(self.cond.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def presence(self, frm, typ='available', timeout=8):
        def match(p):
            return p['from'].bare == frm and p['type'] == typ
        return await self.wait('%s presence from %s' % (typ, frm), match, self.presences, timeout)

    async def no_presence(self, frm, wait=1.0):
        await asyncio.sleep(wait)
        got = [p for p in self.presences if p['from'].bare == frm]
        assert not got, 'unexpected presence: %s' % [str(p) for p in got]

    async def push(self, jid, timeout=8):
        def match(i):
            return jid in i['roster']['items']
        i = await self.wait('roster push for %s' % jid, match, self.pushes, timeout)
        return i['roster']['items'][jid]


async def roster(c, ver=None):
    """The roster as an ElementTree <query/> (None for an empty result)."""
    payload = "<query xmlns='%s'%s/>" % (NS_ROSTER, '' if ver is None else " ver='%s'" % ver)
    r = await iq(c, 'get', None, payload)
    assert r.get('type') == 'result', parleytest.tostr(r)
    return r.find(q('query'))


def items(query):
    out = {}
    for it in query.findall(q('item')):
        out[it.get('jid')] = (it.get('subscription'), it.get('name'),
                              sorted(g.text for g in it.findall(q('group'))), it.get('ask'))
    return out


async def login_w(srv, user, **login_args):
    """login() (with login_args) with a Watch attached before the stream
    opens (presence answering the login's probes arrives before login()
    returns)."""
    made = {}
    orig = parleytest.make_client

    def make(*args, **kw):
        c = orig(*args, **kw)
        made['w'] = Watch(c)
        return c
    parleytest.make_client = make
    try:
        c = await login(srv, user, **login_args)
    finally:
        parleytest.make_client = orig
    return c, made['w']


async def online(srv, user):
    c, w = await login_w(srv, user)
    await c.get_roster()   # an interested resource: it gets pushes
    return c, w


# ---- roster and presence -----------------------------------------------------------

def test_first_roster_holds_the_group_and_presence_flows(server, run):
    a, b, c = new_users(server, 3)
    g = new_group(server, (a, b, c), '--name', 'Support team', '--description', 'first line')

    async def scenario():
        ca, wa = await login_w(server, a)
        got = items(await roster(ca))
        assert got == {bare(b): ('both', b, ['Support team'], None),
                       bare(c): ('both', c, ['Support team'], None)}, got
        cb, wb = await login_w(server, b)
        # b's available presence reaches a, and b learns a's by its probe
        await wa.presence(bare(b))
        await wb.presence(bare(a))
        assert bare(a) in items(await roster(cb))
        await logout(cb)
        await wa.presence(bare(b), 'unavailable')
        await logout(ca)
    run(scenario())
    # nothing of it was written to the personal rosters
    assert server.db_rows('roster_items', a) == 0
    assert server.db_rows('roster_items', b) == 0
    info = ctl_ok(server, 'srg-info', HOST, g)
    assert 'name: Support team' in info and 'description: first line' in info
    assert bare(a) in info and bare(c) in info


def test_subscribe_between_members_is_answered(server, run):
    """RFC 6121 §3.1.3: a member asking another for presence already has
    it through the group: the contact's server answers 'subscribed' on
    the contact's behalf, the contact is not asked, and nothing is
    stored (or asked again at the contact's next login)."""
    a, b = new_users(server, 2)
    new_group(server, (a, b))

    async def scenario():
        ca, wa = await online(server, a)
        cb, wb = await online(server, b)
        await wa.presence(bare(b))
        await wb.presence(bare(a))
        ca.send_presence(pto=bare(b), ptype='subscribe')
        await wa.presence(bare(b), 'subscribed')
        await wb.no_presence(bare(a), wait=1.0)
        await logout(cb)
        cb, wb = await online(server, b)
        await wb.presence(bare(a))
        await wb.no_presence(bare(a), wait=1.0)
        await logout(ca, cb)
    run(scenario())
    assert server.db_rows('roster_items', b) == 0
    assert ctl_ok(server, 'get-roster', bare(b)).strip() == '', ctl_ok(server, 'get-roster', bare(b))


def test_displayed_groups(server, run):
    """Members of 'desk' see the members of 'ops' (and not each other); ops
    members see nobody through desk, but presence goes to who sees them."""
    d1, d2, o1 = new_users(server, 3)
    ops = new_group(server, (o1,), '--name', 'Operations')
    desk = new_group(server, (d1, d2), '--display', ops)

    async def scenario():
        c1, w1 = await login_w(server, d1)
        assert items(await roster(c1)) == {bare(o1): ('both', o1, ['Operations'], None)}
        co = await login(server, o1)
        assert items(await roster(co)) == {}
        await w1.presence(bare(o1))
        # o1's presence goes to d1, who sees o1
        co.send_presence(pstatus='busy')
        await w1.presence(bare(o1))
        await logout(c1, co)
    run(scenario())
    assert desk


def test_membership_changes_reach_connected_users(server, run):
    a, b, c = new_users(server, 3)
    g = new_group(server, (a, b))

    async def scenario():
        ca, wa = await online(server, a)
        cc, wc = await online(server, c)
        assert items(await roster(cc)) == {}
        ctl_ok(server, 'srg-user-add', bare(c), HOST, g)
        it = await wa.push(bare(c))
        assert it['subscription'] == 'both' and set(it['groups']) == {g}, it
        # c sees a and b now, and gets a's presence; a gets c's
        await wc.push(bare(a))
        await wc.push(bare(b))
        await wc.presence(bare(a))
        await wa.presence(bare(c))
        assert set(items(await roster(cc))) == {bare(a), bare(b)}

        ctl_ok(server, 'srg-user-del', bare(c), HOST, g)
        it = await wa.push(bare(c))
        assert it['subscription'] == 'remove', it
        it = await wc.push(bare(a))
        assert it['subscription'] == 'remove', it
        await wa.presence(bare(c), 'unavailable')
        await wc.presence(bare(a), 'unavailable')
        assert items(await roster(cc)) == {}

        # deleting the group takes b away from a's roster
        ctl_ok(server, 'srg-delete', HOST, g)
        it = await wa.push(bare(b))
        assert it['subscription'] == 'remove', it
        assert items(await roster(ca)) == {}
        await logout(ca, cc)
    run(scenario())


def test_shared_contact_cannot_be_removed_and_merges(server, run):
    a, b = new_users(server, 2)
    g = new_group(server, (a, b), '--name', 'Team')

    async def scenario():
        ca, wa = await online(server, a)
        r = await iq(ca, 'set', None, "<query xmlns='%s'><item jid='%s' subscription='remove'/>"
                     "</query>" % (NS_ROSTER, bare(b)))
        assert r.get('type') == 'error', parleytest.tostr(r)
        assert r.find('{jabber:client}error/{%s}not-allowed' % NS_STANZAS) is not None, \
            parleytest.tostr(r)
        assert bare(b) in items(await roster(ca))
        # a personal item for the same contact: name from it, groups joined
        r = await iq(ca, 'set', None, "<query xmlns='%s'><item jid='%s' name='Bobby'>"
                     "<group>Friends</group></item></query>" % (NS_ROSTER, bare(b)))
        assert r.get('type') == 'result', parleytest.tostr(r)
        it = await wa.push(bare(b))
        assert it['name'] == 'Bobby' and set(it['groups']) == {'Friends', 'Team'}, it
        assert it['subscription'] == 'both', it
        assert items(await roster(ca))[bare(b)] == ('both', 'Bobby', ['Friends', 'Team'], None)
        # removing the personal item leaves the shared contact
        r = await iq(ca, 'set', None, "<query xmlns='%s'><item jid='%s' subscription='remove'/>"
                     "</query>" % (NS_ROSTER, bare(b)))
        assert r.get('type') == 'result', parleytest.tostr(r)
        it = await wa.push(bare(b))
        assert it['subscription'] == 'both' and set(it['groups']) == {'Team'}, it
        assert items(await roster(ca))[bare(b)] == ('both', b, ['Team'], None)
        await logout(ca)
    run(scenario())
    assert server.db_rows('roster_items', a) == 0
    assert g


def test_roster_version_follows_the_groups(server, run):
    a, b, c = new_users(server, 3)
    g = new_group(server, (a, b))

    async def scenario():
        ca = await login(server, a)
        first = await roster(ca, ver='')
        ver = first.get('ver')
        assert ver and '-' in ver, parleytest.tostr(first)
        assert await roster(ca, ver=ver) is None   # up to date: empty result
        ctl_ok(server, 'srg-user-add', bare(c), HOST, g)
        again = await roster(ca, ver=ver)
        assert again is not None and again.get('ver') != ver
        assert set(items(again)) == {bare(b), bare(c)}
        await logout(ca)
    run(scenario())


def test_all_and_online_members(server, run):
    a = new_users(server, 1)[0]
    everyone = new_group(server, (), '--name', 'Everyone')
    ctl_ok(server, 'srg-user-add', '@all@', HOST, everyone)
    here = new_group(server, (), '--name', 'Here now')
    ctl_ok(server, 'srg-user-add', '@online@', HOST, here)

    async def scenario():
        ca, wa = await online(server, a)
        got = items(await roster(ca))
        # every account of the host is there (the fixture's users too)
        for u in ('alice', 'bob', 'carol', 'erin'):
            assert got[bare(u)][2] == ['Everyone'], got
        assert 'dave@%s' % OTHER not in got
        # a new account appears at once
        n = unique('new')
        server.register(n, HOST, 'pw-' + n)
        it = await wa.push(bare(n))
        assert set(it['groups']) == {'Everyone'}, it
        # a login adds the user to 'Here now', a logout takes it out again
        cn = await login(server, n)
        it = await wa.push(bare(n))
        assert set(it['groups']) == {'Everyone', 'Here now'}, it
        await wa.presence(bare(n))
        await logout(cn)
        it = await wa.push(bare(n))
        assert set(it['groups']) == {'Everyone'}, it
        await wa.presence(bare(n), 'unavailable')
        # a removed account disappears
        ctl_ok(server, 'unregister', n, HOST)
        it = await wa.push(bare(n))
        assert it['subscription'] == 'remove', it
        await logout(ca)
    run(scenario())
    ctl_ok(server, 'srg-delete', HOST, everyone)
    ctl_ok(server, 'srg-delete', HOST, here)


# ---- parleyctl ----------------------------------------------------------------------

def test_parleyctl_srg_commands(server):
    g = unique('g')
    out = ctl_ok(server, 'srg-create', HOST, g, '--name', 'Night shift', '--description',
                 'after 22:00', '--display', '%s,other' % g)
    assert 'created' in out
    assert g in ctl_ok(server, 'srg-list', HOST).split()
    r = server.ctl('srg-create', HOST, g)
    assert r.returncode == 1 and 'exists' in r.stderr, r.stderr
    ctl_ok(server, 'srg-user-add', 'alice@' + HOST, HOST, g)
    r = server.ctl('srg-user-add', 'alice@' + HOST, HOST, g)
    assert r.returncode == 1 and 'already' in r.stderr, r.stderr
    r = server.ctl('srg-user-add', 'dave@' + OTHER, HOST, g)
    assert r.returncode == 2 and "group's host" in r.stderr, r.stderr
    r = server.ctl('srg-user-add', 'alice@' + HOST, HOST, 'no-such-group')
    assert r.returncode == 1 and 'no group' in r.stderr, r.stderr
    r = server.ctl('srg-user-add', 'alice@' + HOST, 'unknown.example', g)
    assert r.returncode == 1 and 'not served' in r.stderr, r.stderr
    r = server.ctl('srg-create', HOST, g + '2', '--colour', 'red')
    assert r.returncode == 2 and 'unknown option' in r.stderr, r.stderr
    r = server.ctl('srg-list')
    assert r.returncode == 2, r.stderr
    info = ctl_ok(server, 'srg-info', HOST, g)
    assert 'name: Night shift' in info and 'description: after 22:00' in info
    assert 'displayed: %s,other' % g in info or 'displayed: other,%s' % g in info, info
    assert 'alice@' + HOST in info
    ctl_ok(server, 'srg-user-del', 'alice@' + HOST, HOST, g)
    r = server.ctl('srg-user-del', 'alice@' + HOST, HOST, g)
    assert r.returncode == 1 and 'not a member' in r.stderr, r.stderr
    ctl_ok(server, 'srg-delete', HOST, g)
    assert g not in ctl_ok(server, 'srg-list', HOST).split()
    r = server.ctl('srg-info', HOST, g)
    assert r.returncode == 1 and 'no group' in r.stderr, r.stderr


def test_parleyctl_srg_offline(own_server, run):
    """With parleyd stopped, the commands work on the database; the next
    start serves the groups (and the names of the members' vCards)."""
    srv = own_server

    async def card():
        cb = await login(srv, 'bob')
        r = await iq(cb, 'set', None, "<vCard xmlns='vcard-temp'><FN>Bob the Builder</FN></vCard>")
        assert r.get('type') == 'result', parleytest.tostr(r)
        await logout(cb)
    run(card())
    assert srv.stop() == 0
    g = unique('g')
    r = srv.ctl('srg-create', HOST, g, '--name', 'Offline made')
    assert r.returncode == 0, r.stderr
    for u in ('alice', 'bob'):
        r = srv.ctl('srg-user-add', '%s@%s' % (u, HOST), HOST, g)
        assert r.returncode == 0, r.stderr
    r = srv.ctl('srg-info', HOST, g)
    assert r.returncode == 0 and 'bob@' + HOST in r.stdout, r.stdout + r.stderr
    srv.start()

    async def scenario():
        ca = await login(srv, 'alice')
        # the name comes from bob's vCard, read at start
        assert items(await roster(ca)) == {'bob@' + HOST: ('both', 'Bob the Builder',
                                                          ['Offline made'], None)}
        await logout(ca)
    run(scenario())


def test_names_from_vcards(server, run):
    """A shared contact's name is the FN (else NICKNAME) of its vCard, else
    its user name; a new vCard renames it in the rosters of connected
    members at once."""
    a, b, c = new_users(server, 3)
    new_group(server, (a, b, c))

    async def scenario():
        cb = await login(server, b)
        r = await iq(cb, 'set', None, "<vCard xmlns='vcard-temp'><FN>Bea Example</FN>"
                     "<NICKNAME>bea</NICKNAME></vCard>")
        assert r.get('type') == 'result', parleytest.tostr(r)
        cc = await login(server, c)
        r = await iq(cc, 'set', None, "<vCard xmlns='vcard-temp'><NICKNAME>Cee</NICKNAME></vCard>")
        assert r.get('type') == 'result', parleytest.tostr(r)
        ca, wa = await online(server, a)
        got = items(await roster(ca))
        assert got[bare(b)][1] == 'Bea Example' and got[bare(c)][1] == 'Cee', got
        r = await iq(cb, 'set', None, "<vCard xmlns='vcard-temp'><FN>Beatrice</FN></vCard>")
        assert r.get('type') == 'result', parleytest.tostr(r)
        it = await wa.push(bare(b))
        assert it['name'] == 'Beatrice' and it['subscription'] == 'both', it
        # a vCard without FN and NICKNAME: the user name again
        r = await iq(cc, 'set', None, "<vCard xmlns='vcard-temp'/>")
        assert r.get('type') == 'result', parleytest.tostr(r)
        it = await wa.push(bare(c))
        assert it['name'] == c, it
        await logout(ca, cb, cc)
    run(scenario())


# ---- privacy lists see shared contacts -------------------------------------------

def test_privacy_group_and_subscription_rules_see_shared_contacts(server, run):
    """A privacy list's group and subscription items match shared contacts as
    the roster shows them (group = the shared group's name, subscription
    both): in a session, and for the default list when the message would be
    stored offline."""
    from test_privacy import body_from, collect, item, list_xml, none_within, ok, pset, send
    a, b, c = new_users(server, 3)
    new_group(server, (a, b), '--name', 'Night shift')

    async def scenario():
        ca = await login(server, a)
        cb = await login(server, b)
        cc = await login(server, c)
        try:
            am, berr = collect(ca, 'message'), collect(cb, 'message_error')
            ok(await pset(ca, list_xml('no-shift',
                                       item(1, 'deny', 'group', 'Night shift', ('message',)))))
            ok(await pset(ca, "<default name='no-shift'/>"))
            send(cb, bare(a), 'from the shift')
            e = await asyncio.wait_for(berr.get(), 5)
            assert e['error']['condition'] == 'service-unavailable', e
            await none_within(am, 0.5)
            send(cc, bare(a), 'from outside')
            await body_from(am, 'from outside')
            # subscription both: the shared contact, not the stranger
            ok(await pset(ca, list_xml('no-both',
                                       item(1, 'deny', 'subscription', 'both', ('message',)))))
            ok(await pset(ca, "<default name='no-both'/>"))
            await logout(ca)
            # a has no session: the default list decides what is stored
            send(cb, bare(a), 'stored? no')
            e = await asyncio.wait_for(berr.get(), 5)
            assert e['error']['condition'] == 'service-unavailable', e
            send(cc, bare(a), 'stored? yes')
            await asyncio.sleep(0.5)
        finally:
            await logout(cb, cc)
    run(scenario())
    assert server.db_rows('offline_messages', a) == 1
