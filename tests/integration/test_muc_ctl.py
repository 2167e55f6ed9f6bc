"""parleyctl's multi-user chat commands against a running parleyd:
muc-list HOST, muc-info ROOMJID, muc-create ROOMJID [OWNERJID],
muc-destroy ROOMJID [REASON] and muc-set-affiliation ROOMJID JID
AFFILIATION, with the exit codes of the other commands (0 done, 1 failed,
2 usage error).  What a command did is checked over XMPP."""
from parleytest import HOST, q, stanza_error, tostr, unique
from test_muc import (NS_MUC_USER, SERVICE, admin_list, codes, connect, create_room, destroy, disco_info,
                      is_presence, item_of, joined, new_room, take, user_x)


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_help_lists_the_muc_commands(server):
    out = ok(server.ctl('help'))
    for cmd in ('muc-list', 'muc-info', 'muc-create', 'muc-destroy', 'muc-set-affiliation'):
        assert cmd in out, (cmd, out)


def test_muc_list(server):
    bob = connect(server, 'bob')
    try:
        room = create_room(bob, 'bob', config={'muc#roomconfig_publicroom': True})
        hidden = create_room(bob, 'bob', config={'muc#roomconfig_publicroom': False})
        out = ok(server.ctl('muc-list', HOST))
        # an administrator's list has every room, hidden ones too
        assert room in out and hidden in out, out
        destroy(bob, room)
        destroy(bob, hidden)
        out = ok(server.ctl('muc-list', HOST))
        assert room not in out, out
    finally:
        bob.close()


def test_muc_list_unknown_host(server):
    r = server.ctl('muc-list', 'no-such-host.example')
    assert r.returncode in (1, 2), (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()


def test_muc_info(server):
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    try:
        name = unique('Info room ')
        room = create_room(bob, 'bob', config={'muc#roomconfig_roomname': name,
                                               'muc#roomconfig_persistentroom': True})
        joined(carol, room, 'carol')
        out = ok(server.ctl('muc-info', room))
        assert name in out, out
        assert 'bob@' + HOST in out, 'the owner is not shown: %s' % out
        assert 'carol' in out, 'the occupants are not shown: %s' % out
        destroy(bob, room)
    finally:
        bob.close()
        carol.close()


def test_muc_info_missing_room_fails(server):
    r = server.ctl('muc-info', new_room('none'))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()


def test_muc_create_with_owner(server):
    room = new_room('ctl')
    ok(server.ctl('muc-create', room, 'carol@' + HOST))
    c = connect(server, 'carol')
    other = connect(server, 'erin')
    try:
        info = disco_info(other, room)
        assert info.get('type') == 'result', tostr(info)
        # created by the administrator: not locked, not created again on entry
        j = joined(other, room, 'erin')
        assert 201 not in j.codes, tostr(j.self_presence)
        j = joined(c, room, 'carol')
        assert j.item.get('affiliation') == 'owner', tostr(j.self_presence)
        assert 'carol@' + HOST in admin_list(c, room, affiliation='owner')
        # the room exists once: creating it again fails
        r = server.ctl('muc-create', room, 'carol@' + HOST)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        destroy(c, room)
    finally:
        c.close()
        other.close()


def test_muc_create_without_owner(server):
    room = new_room('ctl-noowner')
    ok(server.ctl('muc-create', room))
    c = connect(server, 'erin')
    try:
        assert disco_info(c, room).get('type') == 'result'
        assert room in ok(server.ctl('muc-list', HOST))
    finally:
        c.close()
    ok(server.ctl('muc-destroy', room))


def test_muc_create_bad_arguments(server):
    for args in (('muc-create', 'not a jid@@'), ('muc-create', 'room@not-a-muc-service.example'),
                 ('muc-create', new_room('x'), 'bad owner@@')):
        r = server.ctl(*args)
        assert r.returncode in (1, 2), (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip(), args
    r = server.ctl('muc-create')
    assert r.returncode == 2, (r.returncode, r.stderr)


def test_muc_destroy_tells_the_occupants(server):
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    try:
        room = create_room(bob, 'bob')
        joined(carol, room, 'carol')
        ok(server.ctl('muc-destroy', room, 'maintenance tonight'))
        for c, nick in ((bob, 'bob'), (carol, 'carol')):
            p = take(c, lambda e: is_presence(e, frm=room + '/' + nick, typ='unavailable'), 5, 'destroy')
            d = user_x(p).find(q(NS_MUC_USER, 'destroy'))
            assert d is not None, tostr(p)
            assert d.findtext(q(NS_MUC_USER, 'reason')) == 'maintenance tonight', tostr(p)
            assert item_of(p).get('role') == 'none', tostr(p)
        assert stanza_error(disco_info(carol, room)) == 'item-not-found'
        r = server.ctl('muc-destroy', room)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    finally:
        bob.close()
        carol.close()


def test_muc_set_affiliation(server):
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    erin = connect(server, 'erin')
    try:
        room = create_room(bob, 'bob', config={'muc#roomconfig_membersonly': True})
        ok(server.ctl('muc-set-affiliation', room, 'carol@' + HOST, 'member'))
        j = joined(carol, room, 'carol')
        assert j.item.get('affiliation') == 'member', tostr(j.self_presence)
        ok(server.ctl('muc-set-affiliation', room, 'erin@' + HOST, 'admin'))
        assert 'erin@' + HOST in admin_list(bob, room, affiliation='admin')
        # a ban by the administrator throws the occupant out (301)
        ok(server.ctl('muc-set-affiliation', room, 'carol@' + HOST, 'outcast'))
        p = take(carol, lambda e: is_presence(e, frm=room + '/carol', typ='unavailable'), 5, 'ban')
        assert 301 in codes(p), tostr(p)
        assert 'carol@' + HOST in admin_list(bob, room, affiliation='outcast')
        ok(server.ctl('muc-set-affiliation', room, 'carol@' + HOST, 'none'))
        assert 'carol@' + HOST not in admin_list(bob, room, affiliation='outcast')
        for bad in (('muc-set-affiliation', room, 'carol@' + HOST, 'emperor'),
                    ('muc-set-affiliation', room, 'bad jid@@', 'member'),
                    ('muc-set-affiliation', new_room('none'), 'carol@' + HOST, 'member')):
            r = server.ctl(*bad)
            assert r.returncode in (1, 2), (bad, r.returncode, r.stdout, r.stderr)
            assert r.stderr.strip(), bad
        destroy(bob, room)
    finally:
        bob.close()
        carol.close()
        erin.close()


def test_muc_commands_on_the_service_name(server):
    """The service itself is not a room."""
    r = server.ctl('muc-info', SERVICE)
    assert r.returncode in (1, 2), (r.returncode, r.stdout, r.stderr)
