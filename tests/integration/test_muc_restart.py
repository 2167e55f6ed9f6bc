"""Persistent multi-user chat rooms survive a crash: a room's
configuration, subject, affiliations and registered nicks are back after
SIGKILL and a restart; temporary and destroyed rooms are not.  Each test
has a parleyd of its own (fresh_server)."""
import signal
import time

from parleytest import HOST, NS_CLIENT, NS_REGISTER, OTHER, q, stanza_error, tostr, unique
from test_muc import (NS_MUC_REGISTER, NS_XDATA, admin_list, connect, create_room, destroy, disco_info,
                      features, field_xml, fresh_user, get_form, identities, info_form, iq, join_error,
                      joined, set_affiliation, take, is_subject_message, values, NS_ROOMINFO, new_room,
                      disco_items, item_jids, SERVICE)

# How long a change is given to reach the store before the kill.  An answer
# from the room should mean it is stored; the grace keeps the test about
# what survives, not about the exact moment.
GRACE = 1.0


def crash_and_restart(srv):
    srv.proc.send_signal(signal.SIGKILL)
    assert srv.wait_exit(10) == -signal.SIGKILL
    srv._logf.close()
    srv.start()


def test_persistent_room_survives_sigkill(fresh_server):
    srv = fresh_server
    nick_user = fresh_user(srv, 'nick')
    member = fresh_user(srv, 'member')
    name, desc, topic = unique('Kept '), unique('Still here '), unique('Topic ')
    bob = connect(srv, 'bob')
    try:
        room = create_room(bob, 'bob', config={
            'muc#roomconfig_roomname': name,
            'muc#roomconfig_roomdesc': desc,
            'muc#roomconfig_persistentroom': True,
            'muc#roomconfig_publicroom': True,
            'muc#roomconfig_membersonly': True,
            'muc#roomconfig_moderatedroom': True,
            'muc#roomconfig_passwordprotectedroom': True,
            'muc#roomconfig_roomsecret': 'kept-secret',
            'muc#roomconfig_whois': 'anyone',
            'muc#roomconfig_allowpm': 'moderators',
            'muc#maxhistoryfetch': '15',
        }, prefix='kept')
        for jid, aff in (('carol@' + HOST, 'admin'), ('erin@' + HOST, 'outcast'),
                         (nick_user + '@' + HOST, 'member'), (member + '@' + HOST, 'member')):
            r = set_affiliation(bob, room, jid, aff, reason='why %s' % aff)
            assert r.get('type') == 'result', tostr(r)
        bob.send("<message to='%s' type='groupchat'><subject>%s</subject></message>" % (room, topic))
        take(bob, lambda e: is_subject_message(e, room) and e.findtext(q(NS_CLIENT, 'subject')) == topic, 5, 'subject')
        # a member registers a nick with the room (§7.10)
        reg = connect(srv, nick_user, password='fresh-secret')
        reserved = unique('Reserved')
        r = iq(reg, 'set', room, "<query xmlns='%s'><x xmlns='%s' type='submit'>%s%s</x></query>"
               % (NS_REGISTER, NS_XDATA, field_xml('FORM_TYPE', NS_MUC_REGISTER),
                  field_xml('muc#register_roomnick', reserved)))
        assert r.get('type') == 'result', tostr(r)
        reg.close()
        form_before = {k: values(v) for k, v in get_form(bob, room).items()}
        # a temporary room and a destroyed persistent one, for contrast
        temp = create_room(bob, 'bob', config={'muc#roomconfig_persistentroom': False}, prefix='temp')
        gone = create_room(bob, 'bob', config={'muc#roomconfig_persistentroom': True}, prefix='gone')
        assert destroy(bob, gone, 'bye').get('type') == 'result'
        time.sleep(GRACE)
    finally:
        bob.close()

    crash_and_restart(srv)

    mem = connect(srv, member, password='fresh-secret')
    bob = connect(srv, 'bob')
    carol = connect(srv, 'carol')
    erin = connect(srv, 'erin')
    other = connect(srv, fresh_user(srv, 'other'), password='fresh-secret')
    try:
        info = disco_info(carol, room)
        assert info.get('type') == 'result', 'the persistent room is gone: %s' % tostr(info)
        assert ('conference', 'text', name) in identities(info), tostr(info)
        feats = features(info)
        for want in ('muc_persistent', 'muc_public', 'muc_membersonly', 'muc_moderated', 'muc_nonanonymous',
                     'muc_passwordprotected'):
            assert want in feats, '%s lost: %s' % (want, sorted(feats))
        form = info_form(info, NS_ROOMINFO)
        assert form is not None and form.get('muc#roominfo_description') == [desc], form
        assert room in item_jids(disco_items(carol, SERVICE))
        # the affiliations
        j = joined(bob, room, 'bob', password='kept-secret')
        assert j.item.get('affiliation') == 'owner', tostr(j.self_presence)
        assert 201 not in j.codes, 'the room was created anew: %s' % tostr(j.self_presence)
        assert j.subject.findtext(q(NS_CLIENT, 'subject')) == topic, tostr(j.subject)
        assert {k: values(v) for k, v in get_form(bob, room).items()} == form_before
        assert 'carol@' + HOST in admin_list(bob, room, affiliation='admin')
        outcasts = admin_list(bob, room, affiliation='outcast')
        assert 'erin@' + HOST in outcasts
        assert outcasts['erin@' + HOST].findtext(q('http://jabber.org/protocol/muc#admin', 'reason')) == 'why outcast'
        members = admin_list(bob, room, affiliation='member')
        assert {member + '@' + HOST, nick_user + '@' + HOST} <= set(members), members
        assert join_error(erin, room, 'erin', password='kept-secret') == 'forbidden'
        assert join_error(other, room, 'other', password='kept-secret') == 'registration-required'
        assert join_error(mem, room, 'mem') == 'not-authorized'
        # the registered nick is still reserved
        assert join_error(mem, room, reserved, password='kept-secret') == 'conflict'
        j = joined(carol, room, 'carol', password='kept-secret')
        assert j.item.get('affiliation') == 'admin', tostr(j.self_presence)
        # not kept: the temporary room and the destroyed one
        for r in (temp, gone):
            info = disco_info(carol, r)
            assert stanza_error(info) == 'item-not-found', '%s came back: %s' % (r, tostr(info))
    finally:
        for c in (mem, bob, carol, erin, other):
            c.close()


def test_changes_after_restart_are_kept_too(fresh_server):
    """A room loaded from the store is stored again when it changes: the
    second crash keeps the second configuration and the new affiliation."""
    srv = fresh_server
    bob = connect(srv, 'bob')
    try:
        room = create_room(bob, 'bob', config={'muc#roomconfig_persistentroom': True,
                                               'muc#roomconfig_roomname': 'First'}, prefix='twice')
        time.sleep(GRACE)
    finally:
        bob.close()
    crash_and_restart(srv)
    bob = connect(srv, 'bob')
    try:
        joined(bob, room, 'bob')
        r = iq(bob, 'set', room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='%s' type='submit'>%s%s"
               "</x></query>" % (NS_XDATA, field_xml('FORM_TYPE', 'http://jabber.org/protocol/muc#roomconfig'),
                                 field_xml('muc#roomconfig_roomname', 'Second')))
        assert r.get('type') == 'result', tostr(r)
        assert set_affiliation(bob, room, 'carol@' + HOST, 'member').get('type') == 'result'
        time.sleep(GRACE)
    finally:
        bob.close()
    crash_and_restart(srv)
    carol = connect(srv, 'carol')
    try:
        info = disco_info(carol, room)
        assert ('conference', 'text', 'Second') in identities(info), tostr(info)
        j = joined(carol, room, 'carol')
        assert j.item.get('affiliation') == 'member', tostr(j.self_presence)
    finally:
        carol.close()


def test_unused_room_name_after_restart_creates_a_new_room(fresh_server):
    """Nothing stored for a room that was never made persistent: after the
    restart the first to enter creates it (201)."""
    srv = fresh_server
    room = new_room('never')
    bob = connect(srv, 'bob')
    try:
        create_room(bob, 'bob', room=room, config={'muc#roomconfig_persistentroom': False})
        time.sleep(GRACE)
    finally:
        bob.close()
    crash_and_restart(srv)
    carol = connect(srv, 'carol')
    try:
        j = joined(carol, room, 'carol')
        assert 201 in j.codes, tostr(j.self_presence)
    finally:
        carol.close()


def test_occupant_id_stable_across_restart(fresh_server):
    """XEP-0421 §4.1: the occupant id of a user in a room MUST be the same
    when the user joins it a second time; a restart of the server in
    between does not make it another join."""
    from test_muc import occupant_id
    srv = fresh_server
    bob = connect(srv, 'bob')
    carol = connect(srv, 'carol')
    try:
        room = create_room(bob, 'bob', config={'muc#roomconfig_persistentroom': True}, prefix='oid')
        before = occupant_id(joined(carol, room, 'carol').self_presence)
        assert before, 'no occupant-id'
        time.sleep(GRACE)
    finally:
        bob.close()
        carol.close()
    crash_and_restart(srv)
    carol = connect(srv, 'carol')
    try:
        after = occupant_id(joined(carol, room, 'carol').self_presence)
        assert after == before, 'occupant-id %s before the restart, %s after' % (before, after)
    finally:
        carol.close()


def test_service_of_a_host_removed_and_added_by_reload(fresh_server):
    """A host whose muc service is added by a reload serves
    conference.<host>; removed by a reload, the service goes with it; added
    back, the service is there again (the domain must not stay taken by
    the removed host)."""
    srv = fresh_server
    base = srv.config.read_text()
    line = '  %s: {}\n' % OTHER
    assert line in base
    with_chat = base.replace(line, line + '  chat.local:\n    modules:\n      muc: {}\n')
    service = 'conference.chat.local'
    bob = connect(srv, 'bob')
    try:
        for round_ in ('first', 'again'):
            srv.config.write_text(with_chat)
            r = srv.ctl('reload')
            assert r.returncode == 0 and 'host chat.local: added' in r.stdout, (round_, r.returncode, r.stdout,
                                                                                r.stderr)
            info = disco_info(bob, service)
            assert info.get('type') == 'result', (round_, tostr(info))
            assert ('conference', 'text') in [(c, t) for c, t, _ in identities(info)], tostr(info)
            srv.config.write_text(base)
            r = srv.ctl('reload')
            assert r.returncode == 0 and 'host chat.local: removed' in r.stdout, (round_, r.stdout, r.stderr)
            info = disco_info(bob, service)
            assert info.get('type') == 'error', 'the service outlived its host: %s' % tostr(info)
    finally:
        bob.close()
