"""Bad input to the multi-user chat service: each case gets its error (or
its stream closed), and the room keeps working for the occupants who did
nothing wrong (the room witness), as do two users outside it (the witness
of test_bad_input.py)."""
import time

import pytest

from parleytest import HOST, NS_CLIENT, NS_PING, q, stanza_error, tostr, unique
from test_muc import (NS_MUC_OWNER, NS_MUC_USER, NS_XDATA, codes, configure, configured, connect, create_room,
                      destroy, drain, error_type, fresh_user, get_form, heard, iq, is_message, is_presence,
                      is_subject_message, join_stanza, joined, say, take, take_all, values)


class RoomWitness:
    """A room owned by bob with carol in it: after the bad input, carol's
    message still reaches bob, and a newcomer can still enter."""

    def __init__(self, server):
        self.server = server
        self.owner = connect(server, 'bob', resource=unique('rw-'))
        self.room = create_room(self.owner, 'bob', config={'muc#roomconfig_changesubject': False},
                                prefix='witness')
        self.member = connect(server, 'carol', resource=unique('rw-'))
        joined(self.member, self.room, 'carol')

    def check(self):
        body = unique('room-alive-')
        say(self.member, self.room, body)
        m = heard(self.owner, self.room, body, timeout=10)
        assert m.get('from') == self.room + '/carol', tostr(m)
        c = connect(self.server, 'erin', resource=unique('rw-new-'))
        try:
            nick = unique('new')
            joined(c, self.room, nick)
        finally:
            c.close()

    def close(self):
        try:
            destroy(self.owner, self.room)
        except Exception:
            pass
        self.owner.close()
        self.member.close()


@pytest.fixture
def room_witness(server):
    w = RoomWitness(server)
    yield w
    w.close()


def _bad_user(server):
    """A fresh account for the misbehaving client (nothing it does is left
    on the accounts other tests use)."""
    user = fresh_user(server, 'bad')
    return connect(server, user, password='fresh-secret'), user


# ---- nicks -----------------------------------------------------------------------------

@pytest.mark.parametrize('nick', [
    'bad\ue000nick',        # private use (RFC 3920 resourceprep, C.3)
    'a\u05d0b',             # mixes right-to-left and left-to-right (bidi rule)
    'x\ufdd0y',             # a noncharacter (C.4)
    'tab&#9;here',          # an ASCII control (C.2.1), as a character reference: a
                            # literal tab in an attribute would be normalised to a space
    'n' * 1100,             # longer than a resourcepart may be (1023 bytes)
])
def test_malformed_nick_jid_malformed(server, room_witness, witness, nick):
    """A nick resourceprep refuses: jid-malformed (RFC 6120 §8.3.3.8), no
    occupant is created, and the stream goes on."""
    c, _ = _bad_user(server)
    try:
        c.send(join_stanza(room_witness.room, nick))
        err = take(c, lambda e: is_presence(e, typ='error'), 5, 'presence error')
        assert stanza_error(err) == 'jid-malformed', tostr(err)
        assert take_all(room_witness.owner, lambda e: is_presence(e, room=room_witness.room) and
                        e.get('type') != 'unavailable' and 'carol' not in e.get('from'), 0.3) == []
        r = iq(c, 'get', HOST, "<ping xmlns='%s'/>" % NS_PING)
        assert r.get('type') == 'result', tostr(r)
    finally:
        c.close()
    room_witness.check()
    witness.check()


def test_empty_nick_jid_malformed(server, room_witness):
    """Presence to the bare room JID (no nick) with the MUC element: the
    service cannot make an occupant of it (§7.2.1: jid-malformed)."""
    c, _ = _bad_user(server)
    try:
        c.send("<presence to='%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % room_witness.room)
        err = take(c, lambda e: is_presence(e, typ='error'), 5, 'presence error')
        assert stanza_error(err) in ('jid-malformed', 'bad-request'), tostr(err)
    finally:
        c.close()
    room_witness.check()


# ---- oversized subject ------------------------------------------------------------------

def test_ten_megabyte_subject(server, room_witness, witness):
    """A 10 MB subject from an occupant allowed to set it: the stanza size
    limit (max_stanza_size 64K in the tests) closes that stream with
    policy-violation; the room keeps its subject and its occupants."""
    c = connect(server, 'erin', resource=unique('big-'))
    try:
        room = room_witness.room
        configured(room_witness.owner, room, {'muc#roomconfig_changesubject': True})
        joined(c, room, 'erin')
        topic = unique('Sane topic ')
        room_witness.owner.send("<message to='%s' type='groupchat'><subject>%s</subject></message>" % (room, topic))
        take(room_witness.member, lambda e: is_subject_message(e, room), 5, 'the sane subject')
        # erin has read everything sent to her, so the server's only answer
        # while she writes is the stream error
        take(c, lambda e: is_subject_message(e, room), 5, 'the sane subject')
        drain(c, 0.3)
        c.send("<message to='%s' type='groupchat'><subject>" % room)
        c.send_slowly('s' * (10 * 1024 * 1024) + '</subject></message>')
        got = c.stream_error(timeout=20)
        assert got == 'policy-violation', 'expected policy-violation, got %s' % got
        assert c.wait_closed(timeout=10)
    finally:
        c.close()
    # erin's occupant is gone (her stream was closed), the others stay
    p = take(room_witness.member, lambda e: is_presence(e, frm=room_witness.room + '/erin', typ='unavailable'),
             10, "erin's removal")
    assert p is not None
    room_witness.check()
    witness.check()
    # the subject is the sane one
    late = connect(server, 'alice', resource=unique('late-'))
    try:
        j = joined(late, room_witness.room, unique('late'))
        assert j.subject.findtext(q(NS_CLIENT, 'subject')) == topic, tostr(j.subject)
    finally:
        late.close()


def test_subject_over_max_subject(server, room_witness):
    """A subject longer than max_subject (1K by default) but well within
    the stanza limit: not-acceptable, and the subject stays."""
    owner, room = room_witness.owner, room_witness.room
    topic = unique('Short ')
    owner.send("<message to='%s' type='groupchat'><subject>%s</subject></message>" % (room, topic))
    take(room_witness.member, lambda e: is_subject_message(e, room) and
         e.findtext(q(NS_CLIENT, 'subject')) == topic, 5, 'the short subject')
    owner.send("<message to='%s' type='groupchat' id='longsubj'><subject>%s</subject></message>"
               % (room, 'L' * 2000))
    err = take(owner, lambda e: is_message(e, typ='error') and e.get('id') == 'longsubj', 5, 'error')
    assert stanza_error(err) == 'not-acceptable', tostr(err)
    assert take_all(room_witness.member, lambda e: is_subject_message(e, room), 0.5) == []
    room_witness.check()


# ---- floods ----------------------------------------------------------------------------------

def test_join_flood_many_rooms(server, room_witness, witness):
    """One client asks to create 200 rooms at once: each presence gets an
    answer, no more rooms than max_rooms_per_user (10) come out of it, the
    stream survives, and the others are not disturbed."""
    c, user = _bad_user(server)
    try:
        prefix = unique('flood')
        rooms = ['%s-%d@conference.%s' % (prefix, i, HOST) for i in range(200)]
        c.send(''.join(join_stanza(r, 'f') for r in rooms))
        answers = take_all(c, lambda e: is_presence(e) and (e.get('from') or '').split('@')[0].startswith(prefix),
                           10)
        made = [e for e in answers if e.get('type') != 'error' and 201 in codes(e)]
        errors = [e for e in answers if e.get('type') == 'error']
        # answers may keep coming a little longer
        deadline = time.monotonic() + 20
        while len(made) + len(errors) < len(rooms) and time.monotonic() < deadline:
            more = take_all(c, lambda e: is_presence(e) and (e.get('from') or '').split('@')[0].startswith(prefix), 1)
            made += [e for e in more if e.get('type') != 'error' and 201 in codes(e)]
            errors += [e for e in more if e.get('type') == 'error']
        assert len(made) + len(errors) == len(rooms), 'answered %d + %d of %d' % (len(made), len(errors), len(rooms))
        assert len(made) <= 10, '%d rooms created by one user (max_rooms_per_user 10)' % len(made)
        for e in errors:
            assert stanza_error(e) in ('resource-constraint', 'not-allowed', 'policy-violation',
                                       'service-unavailable'), tostr(e)
        r = iq(c, 'get', HOST, "<ping xmlns='%s'/>" % NS_PING)
        assert r.get('type') == 'result', tostr(r)
    finally:
        c.close()
    room_witness.check()
    witness.check()


def test_join_flood_one_room(server, room_witness, witness):
    """Hundreds of join and leave presences into a room at once: the
    stream that sent them is still answered and the room still works."""
    c, _ = _bad_user(server)
    try:
        room = room_witness.room
        burst = ''.join(join_stanza(room, 'n%d' % i) + "<presence to='%s/n%d' type='unavailable'/>" % (room, i)
                        for i in range(300))
        c.send(burst)
        r = iq(c, 'get', HOST, "<ping xmlns='%s'/>" % NS_PING, timeout=30)
        assert r.get('type') == 'result', tostr(r)
    finally:
        c.close()
    time.sleep(1)
    take_all(room_witness.owner, lambda e: is_presence(e), 2)
    take_all(room_witness.member, lambda e: is_presence(e), 2)
    room_witness.check()
    witness.check()


def test_invitation_spam(server, room_witness, witness):
    """200 mediated invitations at once: the invitee is not buried (the
    occupant's message rate, 5/s with a burst of 10, applies; the rest are
    refused with resource-constraint) and the room keeps working."""
    c, _ = _bad_user(server)
    victim = connect(server, 'alice', resource=unique('victim-'))
    try:
        room = room_witness.room
        configured(room_witness.owner, room, {'muc#roomconfig_allowinvites': True})
        joined(c, room, 'spammer')
        start = time.monotonic()
        c.send(''.join("<message to='%s' id='inv%d'><x xmlns='%s'><invite to='alice@%s'><reason>%d</reason>"
                       "</invite></x></message>" % (room, i, NS_MUC_USER, HOST, i) for i in range(200)))
        refused = take_all(c, lambda e: is_message(e, typ='error'), 3)
        elapsed = time.monotonic() - start
        got = take_all(victim, lambda e: is_message(e, frm=room), 1)
        assert refused, 'no invitation refused out of 200'
        for e in refused:
            assert stanza_error(e) == 'resource-constraint' and error_type(e) == 'wait', tostr(e)
        assert len(got) <= 10 + 5 * (elapsed + 1) + 1, '%d invitations in %.1fs' % (len(got), elapsed)
        r = iq(c, 'get', HOST, "<ping xmlns='%s'/>" % NS_PING)
        assert r.get('type') == 'result', tostr(r)
    finally:
        c.close()
        victim.close()
    room_witness.check()
    witness.check()


# ---- messages to the wrong place ---------------------------------------------------------------

def test_private_message_to_absent_nick_item_not_found(server, room_witness):
    """§7.5: to room/nick where nobody has that nick: item-not-found."""
    m = room_witness.member
    m.send("<message to='%s/nobody-here' type='chat' id='pm1'><body>hello?</body></message>" % room_witness.room)
    err = take(m, lambda e: is_message(e, typ='error') and e.get('id') == 'pm1', 5, 'error')
    assert stanza_error(err) == 'item-not-found', tostr(err)
    room_witness.check()


def test_groupchat_to_absent_nick(server, room_witness):
    """A groupchat message to room/nick for a nick that is not an occupant:
    item-not-found (there is nobody), or bad-request (§7.5: groupchat to an
    occupant JID is refused anyway); nobody receives it."""
    m = room_witness.member
    body = unique('astray-')
    m.send("<message to='%s/nobody-here' type='groupchat' id='gc1'><body>%s</body></message>"
           % (room_witness.room, body))
    err = take(m, lambda e: is_message(e, typ='error') and e.get('id') == 'gc1', 5, 'error')
    assert stanza_error(err) in ('item-not-found', 'bad-request'), tostr(err)
    assert take_all(room_witness.owner, lambda e: is_message(e, body=body), 0.5) == []
    room_witness.check()


def test_groupchat_to_occupant_from_outsider(server, room_witness):
    """Somebody not in the room sends groupchat to an occupant's JID and a
    private message: refused, and the occupant gets nothing."""
    c, _ = _bad_user(server)
    try:
        body = unique('outsider-')
        c.send("<message to='%s/carol' type='groupchat' id='o1'><body>%s</body></message>" % (room_witness.room, body))
        err = take(c, lambda e: is_message(e, typ='error') and e.get('id') == 'o1', 5, 'error')
        assert stanza_error(err) in ('not-acceptable', 'bad-request', 'item-not-found'), tostr(err)
        c.send("<message to='%s' type='groupchat' id='o2'><body>%s</body></message>" % (room_witness.room, body))
        err = take(c, lambda e: is_message(e, typ='error') and e.get('id') == 'o2', 5, 'error')
        assert stanza_error(err) == 'not-acceptable', tostr(err)
        assert take_all(room_witness.member, lambda e: is_message(e, body=body), 0.5) == []
    finally:
        c.close()
    room_witness.check()


def test_message_to_missing_room(server, witness):
    c, _ = _bad_user(server)
    try:
        c.send("<message to='%s@conference.%s' type='groupchat' id='nr'><body>x</body></message>"
               % (unique('ghost'), HOST))
        err = take(c, lambda e: is_message(e, typ='error') and e.get('id') == 'nr', 5, 'error')
        assert stanza_error(err) in ('item-not-found', 'not-acceptable'), tostr(err)
    finally:
        c.close()
    witness.check()


# ---- configuration forms ------------------------------------------------------------------------

BAD_FORMS = [
    ('unknown field', {'muc#roomconfig_frobnicate': '1'}),
    ('not a number', {'muc#roomconfig_maxusers': 'lots'}),
    ('negative', {'muc#roomconfig_maxusers': '-5'}),
    ('not an option', {'muc#roomconfig_whois': 'everybody'}),
    ('not a boolean', {'muc#roomconfig_publicroom': 'perhaps'}),
    ('password without secret', {'muc#roomconfig_passwordprotectedroom': True, 'muc#roomconfig_roomsecret': ''}),
    ('bad jid', {'muc#roomconfig_roomowners': ['bob@%s' % HOST, 'not a jid@@']}),
    ('two values for one', {'muc#roomconfig_roomname': ['one', 'two']}),
    ('bad allowpm', {'muc#roomconfig_allowpm': 'everybody'}),
    ('above max_occupants', {'muc#roomconfig_maxusers': '100000'}),
    ('no owner left', {'muc#roomconfig_roomowners': []}),
]


@pytest.mark.parametrize('what,fields', BAD_FORMS, ids=[w for w, _ in BAD_FORMS])
def test_bad_config_form_refused(server, room_witness, what, fields):
    """A form with an unknown field or a contradictory or invalid value is
    refused as a whole (bad-request or not-acceptable); the configuration
    is unchanged and the room works."""
    owner, room = room_witness.owner, room_witness.room
    before = {k: values(v) for k, v in get_form(owner, room).items()}
    r = configure(owner, room, fields)
    assert r.get('type') == 'error', '%s accepted: %s' % (what, tostr(r))
    assert stanza_error(r) in ('bad-request', 'not-acceptable', 'jid-malformed'), tostr(r)
    after = {k: values(v) for k, v in get_form(owner, room).items()}
    assert after == before, 'a refused form changed the configuration'
    room_witness.check()


def test_config_form_of_the_wrong_kind(server, room_witness):
    """A form with another FORM_TYPE, a form of type 'form' (not 'submit'),
    and a query with no form at all: refused; the room works."""
    owner, room = room_witness.owner, room_witness.room
    r = configure(owner, room, {'muc#roomconfig_roomname': 'x'}, form_type='urn:example:other')
    assert stanza_error(r) in ('bad-request', 'not-acceptable'), tostr(r)
    r = iq(owner, 'set', room, "<query xmlns='%s'><x xmlns='%s' type='form'/></query>" % (NS_MUC_OWNER, NS_XDATA))
    assert stanza_error(r) in ('bad-request', 'not-acceptable'), tostr(r)
    r = iq(owner, 'set', room, "<query xmlns='%s'/>" % NS_MUC_OWNER)
    assert stanza_error(r) in ('bad-request', 'not-acceptable'), tostr(r)
    room_witness.check()


BAD_ITEMS = [
    ('role and affiliation', "<item nick='carol' role='visitor' affiliation='outcast' jid='carol@%s'/>" % HOST),
    ('neither', "<item nick='carol'/>"),
    ('bad jid', "<item affiliation='member' jid='not a jid@@'/>"),
    ('unknown affiliation', "<item affiliation='emperor' jid='carol@%s'/>" % HOST),
    ('unknown role', "<item role='god' nick='carol'/>"),
]


@pytest.mark.parametrize('what,items', BAD_ITEMS, ids=[w for w, _ in BAD_ITEMS])
def test_admin_items_malformed(server, room_witness, what, items):
    """muc#admin sets with both role and affiliation (§9, a client MUST
    send only one of them), neither, a bad JID or an unknown affiliation
    or role: refused (bad-request); nothing changes."""
    owner, room = room_witness.owner, room_witness.room
    r = iq(owner, 'set', room, "<query xmlns='http://jabber.org/protocol/muc#admin'>%s</query>" % items)
    assert r.get('type') == 'error', 'accepted: %s -> %s' % (items, tostr(r))
    assert stanza_error(r) in ('bad-request', 'jid-malformed', 'not-acceptable'), tostr(r)
    room_witness.check()


def test_nick_registration_with_bad_nick(server, room_witness):
    """§7.10 with a nick resourceprep refuses, or an empty one: refused."""
    c, _ = _bad_user(server)
    try:
        for nick in ('bad\ue000nick', ''):
            r = iq(c, 'set', room_witness.room,
                   "<query xmlns='jabber:iq:register'><x xmlns='%s' type='submit'>"
                   "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
                   "<field var='muc#register_roomnick'><value>%s</value></field></x></query>" % (NS_XDATA, nick))
            assert r.get('type') == 'error', tostr(r)
            assert stanza_error(r) in ('jid-malformed', 'bad-request', 'not-acceptable'), tostr(r)
    finally:
        c.close()
    room_witness.check()
