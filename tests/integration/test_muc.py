"""Multi-User Chat (XEP-0045) on conference.test.local: the service and its
rooms in service discovery, creating instant and reserved rooms, entering
and leaving, nicks, the moderation and affiliation use cases, history,
subject, private messages, invitations (mediated, and XEP-0249 direct ones
passing through), self-ping (XEP-0410), occupant ids (XEP-0421), several
resources under one nick, the message rate limit and a slow reader.

Most cases speak the protocol with RawClient so the exact stanzas can be
checked; one walks through a room with slixmpp's xep_0045 plugin, as a
client would.  The helpers here are used by the other test_muc_* files.

alice is an admin of test.local (and so of its MUC service); the cases
where rights matter use bob, carol, erin and fresh accounts instead."""
import asyncio
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

import parleytest
from parleytest import (HOST, NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_REGISTER, OTHER,
                        RawClient, StreamClosed, q, stanza_error, tostr, unique)

SERVICE = 'conference.' + HOST

NS_MUC = 'http://jabber.org/protocol/muc'
NS_MUC_USER = NS_MUC + '#user'
NS_MUC_ADMIN = NS_MUC + '#admin'
NS_MUC_OWNER = NS_MUC + '#owner'
NS_ROOMCONFIG = NS_MUC + '#roomconfig'
NS_ROOMINFO = NS_MUC + '#roominfo'
NS_MUC_REGISTER = NS_MUC + '#register'
NS_MUC_REQUEST = NS_MUC + '#request'
NS_XDATA = 'jabber:x:data'
NS_DELAY = 'urn:xmpp:delay'
NS_RSM = 'http://jabber.org/protocol/rsm'
NS_OCCUPANT_ID = 'urn:xmpp:occupant-id:0'
NS_CONFERENCE = 'jabber:x:conference'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'

# The room configuration fields of XEP-0045 §10.1.3 / §15.5.3 (the muc#roomconfig
# FORM_TYPE), with the form field type each must have.  (muc#roomconfig_pubsub
# names a pubsub node; Parley has no pubsub service, so it is not required.)
ROOMCONFIG_FIELDS = {
    'muc#roomconfig_roomname': 'text-single',
    'muc#roomconfig_roomdesc': 'text-single',
    'muc#roomconfig_lang': 'text-single',
    'muc#roomconfig_enablelogging': 'boolean',
    'muc#roomconfig_changesubject': 'boolean',
    'muc#roomconfig_allowinvites': 'boolean',
    'muc#roomconfig_allowpm': 'list-single',
    'muc#roomconfig_maxusers': 'list-single',
    'muc#roomconfig_presencebroadcast': 'list-multi',
    'muc#roomconfig_getmemberlist': 'list-multi',
    'muc#roomconfig_publicroom': 'boolean',
    'muc#roomconfig_persistentroom': 'boolean',
    'muc#roomconfig_moderatedroom': 'boolean',
    'muc#roomconfig_membersonly': 'boolean',
    'muc#roomconfig_passwordprotectedroom': 'boolean',
    'muc#roomconfig_roomsecret': 'text-private',
    'muc#roomconfig_whois': 'list-single',
    'muc#maxhistoryfetch': 'text-single',
    'muc#roomconfig_roomadmins': 'jid-multi',
    'muc#roomconfig_roomowners': 'jid-multi',
}

# disco#info features of a room (XEP-0045 §6.4, §15.3.2): one of each pair.
FEATURE_PAIRS = [
    ('muc_public', 'muc_hidden'),
    ('muc_persistent', 'muc_temporary'),
    ('muc_open', 'muc_membersonly'),
    ('muc_unmoderated', 'muc_moderated'),
    ('muc_nonanonymous', 'muc_semianonymous'),
    ('muc_unsecured', 'muc_passwordprotected'),
]


# ---- reading without losing anything ----------------------------------------
# RawClient.wait_for drops what does not match; MUC tests wait for several
# stanzas whose order is not always fixed, so everything read is kept in a
# backlog and taken from there first.

def _backlog(c):
    if not hasattr(c, 'backlog'):
        c.backlog = []
    return c.backlog


def take(c, pred, timeout=5.0, what='stanza'):
    """The first element (from the backlog, then from the stream) for which
    pred holds; the others stay in the backlog."""
    bl = _backlog(c)
    for i, e in enumerate(bl):
        if pred(e):
            return bl.pop(i)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError('%r: no %s within %ss; unread: %s'
                               % (c, what, timeout, [tostr(e)[:300] for e in bl[-8:]]))
        try:
            e = c.next(left)
        except TimeoutError:
            continue
        if e is None:
            raise StreamClosed('%r: stream closed while waiting for %s; unread: %s'
                               % (c, what, [tostr(e)[:300] for e in bl[-8:]]))
        if pred(e):
            return e
        bl.append(e)


def take_all(c, pred, wait=1.0):
    """Every element matching pred that arrives within wait seconds (and
    those already in the backlog)."""
    bl = _backlog(c)
    out = [e for e in bl if pred(e)]
    c.backlog = bl = [e for e in bl if not pred(e)]
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            e = c.next(left)
        except TimeoutError:
            return out
        if e is None:
            return out
        if pred(e):
            out.append(e)
        else:
            bl.append(e)


def nothing(c, pred, wait=1.0, what='stanza'):
    got = take_all(c, pred, wait)
    assert not got, '%r got an unexpected %s: %s' % (c, what, [tostr(e)[:400] for e in got])


def drain(c, wait=0.05):
    """Read and forget whatever the server sent (a client that keeps reading)."""
    c.backlog = []
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            if c.next(left) is None:
                return
        except TimeoutError:
            return


def iq(c, typ, to, payload, timeout=10.0):
    """An iq from a RawClient; its answer (result or error)."""
    iq_id = unique('iq')
    c.send("<iq type='%s' id='%s' to='%s'>%s</iq>" % (typ, iq_id, to, payload))
    return take(c, lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == iq_id
                and e.get('type') in ('result', 'error'), timeout, 'answer to iq %s' % iq_id)


def sync(c):
    el = iq(c, 'get', HOST, "<ping xmlns='%s'/>" % NS_PING)
    assert el.get('type') == 'result', tostr(el)


# ---- stanza predicates and parts ------------------------------------------------

def bare(jid):
    return (jid or '').split('/', 1)[0]


def resource(jid):
    parts = (jid or '').split('/', 1)
    return parts[1] if len(parts) == 2 else None


def is_presence(e, frm=None, room=None, typ='any'):
    if e.tag != q(NS_CLIENT, 'presence'):
        return False
    if frm is not None and e.get('from') != frm:
        return False
    if room is not None and bare(e.get('from')) != room:
        return False
    return typ == 'any' or e.get('type') == typ


def is_message(e, frm=None, room=None, body=None, typ='any'):
    if e.tag != q(NS_CLIENT, 'message'):
        return False
    if frm is not None and e.get('from') != frm:
        return False
    if room is not None and bare(e.get('from')) != room:
        return False
    if body is not None and e.findtext(q(NS_CLIENT, 'body')) != body:
        return False
    return typ == 'any' or e.get('type') == typ


def user_x(e):
    return e.find(q(NS_MUC_USER, 'x'))


def codes(e):
    x = user_x(e)
    if x is None:
        return set()
    return {int(s.get('code')) for s in x.findall(q(NS_MUC_USER, 'status')) if s.get('code', '').isdigit()}


def item_of(e):
    x = user_x(e)
    return None if x is None else x.find(q(NS_MUC_USER, 'item'))


def occupant_id(e):
    ids = e.findall(q(NS_OCCUPANT_ID, 'occupant-id'))
    assert len(ids) <= 1, 'more than one occupant-id: %s' % tostr(e)
    return ids[0].get('id') if ids else None


def error_type(e):
    err = e.find(q(NS_CLIENT, 'error'))
    return None if err is None else err.get('type')


def delay_of(e):
    return e.find(q(NS_DELAY, 'delay'))


def is_subject_message(e, room):
    return (is_message(e, room=room) and e.get('type') == 'groupchat'
            and e.find(q(NS_CLIENT, 'subject')) is not None
            and e.find(q(NS_CLIENT, 'body')) is None)


# ---- users, rooms, joining --------------------------------------------------------

def connect(srv, user='alice', resource=None, host=HOST, password=None, **kw):
    c = RawClient(srv.port, host=host, **kw)
    c.login(user, password or srv.password(user, host), resource=resource or unique('muc-'))
    return c


def fresh_user(srv, prefix='m'):
    """A new account of HOST (nothing registered with the MUC service yet)."""
    user = unique(prefix)
    srv.register(user, HOST, 'fresh-secret')
    return user


def new_room(prefix='room', service=SERVICE):
    return '%s@%s' % (unique(prefix), service)


class Joined:
    """What entering a room brought: the self-presence (or the error), the
    presences of the occupants already there, the history and the subject,
    each in the order received."""

    def __init__(self):
        self.error = None
        self.self_presence = None
        self.occupants = []
        self.history = []
        self.subject = None
        self.order = []          # 'presence', 'self', 'history', 'subject'

    @property
    def ok(self):
        return self.self_presence is not None

    @property
    def codes(self):
        return codes(self.self_presence) if self.self_presence is not None else set()

    @property
    def item(self):
        return item_of(self.self_presence)

    @property
    def nick(self):
        return resource(self.self_presence.get('from'))

    def __repr__(self):
        return '<Joined error=%s self=%s>' % (tostr(self.error), tostr(self.self_presence))


def join_stanza(room, nick, password=None, history=None, extra='', x=True):
    hist = ''
    if history is not None:
        hist = '<history %s/>' % ' '.join("%s='%s'" % kv for kv in sorted(history.items()))
    pw = '<password>%s</password>' % password if password is not None else ''
    xel = "<x xmlns='%s'>%s%s</x>" % (NS_MUC, hist, pw) if x else ''
    return "<presence to='%s/%s'>%s%s</presence>" % (room, nick, xel, extra)


def join(c, room, nick, password=None, history=None, extra='', subject=True, timeout=5.0):
    """Enter room as nick (XEP-0045 §7.2).  Returns a Joined; on an error
    presence, Joined.error is set.  Unless subject is False (or the room was
    just created), waits for the subject message that ends the join."""
    # what the room sent before this join belongs to an earlier visit
    c.backlog = [e for e in _backlog(c) if not (is_presence(e, room=room) or is_message(e, room=room))]
    c.send(join_stanza(room, nick, password, history, extra))
    return join_answer(c, room, subject, timeout)


def join_answer(c, room, subject=True, timeout=5.0):
    """What the room answers to a join already sent (see join)."""
    j = Joined()
    passed = set()           # ids of elements left in the backlog by this join
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.01, deadline - time.monotonic())
        e = take(c, lambda e: id(e) not in passed and (is_presence(e, room=room) or is_message(e, room=room)),
                 left, 'the answer to joining %s' % room)
        if is_presence(e, typ='error'):
            j.error = e
            return j
        if j.self_presence is None:
            if is_presence(e) and 110 in codes(e) and e.get('type') != 'unavailable':
                j.self_presence = e
                j.order.append('self')
                if 201 in codes(e) or not subject:
                    return j
            elif is_presence(e):
                j.occupants.append(e)
                j.order.append('presence')
            else:
                j.order.append('early-message')
                _backlog(c).append(e)
                passed.add(id(e))
            continue
        if is_subject_message(e, room):
            j.subject = e
            j.order.append('subject')
            return j
        if is_message(e) and delay_of(e) is not None:
            j.history.append(e)
            j.order.append('history')
            continue
        j.order.append('other')
        _backlog(c).append(e)
        passed.add(id(e))


def joined(c, room, nick, **kw):
    """join() that must succeed."""
    j = join(c, room, nick, **kw)
    assert j.ok, 'joining %s as %s failed: %s' % (room, nick, tostr(j.error))
    return j


def join_error(c, room, nick, **kw):
    """join() that must fail; returns the error condition."""
    j = join(c, room, nick, **kw)
    assert j.error is not None, 'joining %s as %s succeeded: %s' % (room, nick, tostr(j.self_presence))
    return stanza_error(j.error)


def leave(c, room, nick, status=None):
    st = '<status>%s</status>' % status if status else ''
    c.send("<presence to='%s/%s' type='unavailable'>%s</presence>" % (room, nick, st))
    return take(c, lambda e: is_presence(e, frm='%s/%s' % (room, nick), typ='unavailable') and 110 in codes(e)
                and 303 not in codes(e), 5, 'own unavailable presence from %s' % room)


def field_xml(var, value):
    if isinstance(value, bool):
        value = '1' if value else '0'
    values = value if isinstance(value, (list, tuple)) else [value]
    return "<field var='%s'>%s</field>" % (var, ''.join('<value>%s</value>' % v for v in values))


def config_form(fields, form_type=NS_ROOMCONFIG):
    out = "<x xmlns='%s' type='submit'>" % NS_XDATA
    if form_type is not None:
        out += field_xml('FORM_TYPE', form_type)
    for var, value in fields.items():
        out += field_xml(var, value)
    return out + '</x>'


def configure(c, room, fields=None, form_type=NS_ROOMCONFIG):
    """Submit the owner configuration form (§10.2); returns the answer."""
    return iq(c, 'set', room, "<query xmlns='%s'>%s</query>" % (NS_MUC_OWNER, config_form(fields or {}, form_type)))


def configured(c, room, fields=None):
    r = configure(c, room, fields)
    assert r.get('type') == 'result', 'configuring %s: %s' % (room, tostr(r))
    return r


def get_form(c, room):
    """The owner's configuration form (§10.1.3): var -> field element."""
    r = iq(c, 'get', room, "<query xmlns='%s'/>" % NS_MUC_OWNER)
    assert r.get('type') == 'result', tostr(r)
    x = r.find('%s/%s' % (q(NS_MUC_OWNER, 'query'), q(NS_XDATA, 'x')))
    assert x is not None and x.get('type') == 'form', tostr(r)
    return {f.get('var'): f for f in x.findall(q(NS_XDATA, 'field'))}


def values(field):
    return [v.text or '' for v in field.findall(q(NS_XDATA, 'value'))]


def create_room(c, nick, room=None, config=None, prefix='room'):
    """A new room owned by c's user: entered (201), then configured with
    config (a dict of muc#roomconfig fields; {} accepts the defaults, as an
    instant room, §10.1.2).  Returns the room JID."""
    room = room or new_room(prefix)
    j = joined(c, room, nick)
    assert 201 in j.codes, 'the room existed already: %s' % tostr(j.self_presence)
    configured(c, room, config or {})
    return room


def say(c, room, body, to=None, typ='groupchat', extra=''):
    c.send("<message to='%s' type='%s' id='%s'><body>%s</body>%s</message>"
           % (to or room, typ, unique('m'), body, extra))


def heard(c, room, body, timeout=5.0):
    return take(c, lambda e: is_message(e, room=room, body=body), timeout, 'message %r from %s' % (body, room))


def admin_query(c, room, items):
    return iq(c, 'set', room, "<query xmlns='%s'>%s</query>" % (NS_MUC_ADMIN, items))


def admin_list(c, room, affiliation=None, role=None):
    """The items of a muc#admin list request (§9.5, §9.8, §10.5, §10.8, ...):
    {jid or nick: item}; raises on an error."""
    attr = ("affiliation='%s'" % affiliation) if affiliation else ("role='%s'" % role)
    r = iq(c, 'get', room, "<query xmlns='%s'><item %s/></query>" % (NS_MUC_ADMIN, attr))
    assert r.get('type') == 'result', tostr(r)
    items = r.findall('%s/%s' % (q(NS_MUC_ADMIN, 'query'), q(NS_MUC_ADMIN, 'item')))
    return {(i.get('jid') if affiliation else i.get('nick')): i for i in items}


def set_affiliation(c, room, jid, affiliation, reason=None):
    rs = '<reason>%s</reason>' % reason if reason else ''
    return admin_query(c, room, "<item affiliation='%s' jid='%s'>%s</item>" % (affiliation, jid, rs))


def set_role(c, room, nick, role, reason=None):
    rs = '<reason>%s</reason>' % reason if reason else ''
    return admin_query(c, room, "<item nick='%s' role='%s'>%s</item>" % (nick, role, rs))


def destroy(c, room, reason=None, venue=None):
    inner = '<reason>%s</reason>' % reason if reason else ''
    attr = " jid='%s'" % venue if venue else ''
    return iq(c, 'set', room, "<query xmlns='%s'><destroy%s>%s</destroy></query>" % (NS_MUC_OWNER, attr, inner))


def disco_info(c, jid, node=None):
    n = " node='%s'" % node if node else ''
    return iq(c, 'get', jid, "<query xmlns='%s'%s/>" % (NS_DISCO_INFO, n))


def features(info):
    return {f.get('var') for f in info.iter(q(NS_DISCO_INFO, 'feature'))}


def identities(info):
    return [(i.get('category'), i.get('type'), i.get('name')) for i in info.iter(q(NS_DISCO_INFO, 'identity'))]


def info_form(info, form_type):
    """The XEP-0128 form of a disco#info result with that FORM_TYPE: var -> values."""
    for x in info.iter(q(NS_XDATA, 'x')):
        fields = {f.get('var'): values(f) for f in x.findall(q(NS_XDATA, 'field'))}
        if fields.get('FORM_TYPE') == [form_type]:
            return fields
    return None


def disco_items(c, jid, rsm=''):
    r = iq(c, 'get', jid, "<query xmlns='%s'>%s</query>" % (NS_DISCO_ITEMS, rsm))
    assert r.get('type') == 'result', tostr(r)
    return r


def item_jids(r):
    return [i.get('jid') for i in r.iter(q(NS_DISCO_ITEMS, 'item'))]


class Room:
    """A configured room with occupants, closed (and the room destroyed) at the end."""

    def __init__(self, srv, owner='bob', config=None, prefix='room'):
        self.srv = srv
        self.clients = []
        self.owner = self.client(owner)
        self.jid = create_room(self.owner, owner, config=config, prefix=prefix)
        self.owner.nick = owner

    def client(self, user, resource=None):
        c = connect(self.srv, user, resource=resource)
        self.clients.append(c)
        return c

    def enter(self, user, nick=None, **kw):
        c = self.client(user)
        c.nick = nick or user
        c.joined = joined(c, self.jid, c.nick, **kw)
        return c

    def close(self):
        try:
            if not self.owner.closed:
                destroy(self.owner, self.jid)
        except Exception:
            pass
        for c in self.clients:
            c.close()


@pytest.fixture
def rooms(server):
    """rooms(owner='bob', config=None): a new Room; all closed after the test."""
    made = []

    def make(owner='bob', config=None, prefix='room', srv=None):
        r = Room(srv or server, owner, config, prefix)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


# ---- the service --------------------------------------------------------------------

def test_service_listed_in_host_items(server):
    with RawClient(server.port) as c:
        c.login('carol', server.password('carol'))
        r = disco_items(c, HOST)
        assert SERVICE in item_jids(r), tostr(r)


def test_service_disco_info(server):
    with RawClient(server.port) as c:
        c.login('carol', server.password('carol'))
        r = disco_info(c, SERVICE)
        assert r.get('type') == 'result', tostr(r)
        assert ('conference', 'text') in [(cat, typ) for cat, typ, _ in identities(r)], tostr(r)
        assert NS_MUC in features(r), tostr(r)


def test_disco_info_of_missing_room_item_not_found(server):
    with RawClient(server.port) as c:
        c.login('carol', server.password('carol'))
        r = disco_info(c, new_room('nothing'))
        assert stanza_error(r) == 'item-not-found', tostr(r)


# ---- creating rooms -----------------------------------------------------------------------

def test_instant_room_locked_until_accepted(server, rooms):
    """§10.1.1-§10.1.2: the creator gets 201 with owner/moderator; the room
    is locked (others get item-not-found) until the owner accepts the
    default configuration with an empty submit form."""
    room = new_room('instant')
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    try:
        j = joined(bob, room, 'bob')
        assert {110, 201} <= j.codes, tostr(j.self_presence)
        assert j.self_presence.get('from') == room + '/bob'
        assert j.item.get('affiliation') == 'owner' and j.item.get('role') == 'moderator', tostr(j.self_presence)
        assert join_error(carol, room, 'carol') == 'item-not-found'
        configured(bob, room, {})
        j = joined(carol, room, 'carol')
        assert 201 not in j.codes
        assert j.item.get('role') == 'participant' and j.item.get('affiliation') == 'none', tostr(j.self_presence)
        assert [resource(p.get('from')) for p in j.occupants] == ['bob']
        destroy(bob, room)
    finally:
        bob.close()
        carol.close()


def test_reserved_room_config_form(server):
    """§10.1.3: the form has FORM_TYPE and every muc#roomconfig field; what
    is submitted is what the form shows afterwards."""
    room = new_room('reserved')
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    try:
        joined(bob, room, 'bob')
        form = get_form(bob, room)
        assert values(form['FORM_TYPE']) == [NS_ROOMCONFIG] and form['FORM_TYPE'].get('type') == 'hidden'
        missing = sorted(set(ROOMCONFIG_FIELDS) - set(form))
        assert not missing, 'fields missing from the configuration form: %s' % missing
        for var, typ in ROOMCONFIG_FIELDS.items():
            assert form[var].get('type') == typ, '%s has type %s, expected %s' % (var, form[var].get('type'), typ)
        whois = {o.findtext(q(NS_XDATA, 'value')) for o in form['muc#roomconfig_whois'].findall(q(NS_XDATA, 'option'))}
        assert {'moderators', 'anyone'} <= whois, whois
        allowpm = {o.findtext(q(NS_XDATA, 'value'))
                   for o in form['muc#roomconfig_allowpm'].findall(q(NS_XDATA, 'option'))}
        assert {'anyone', 'participants', 'moderators', 'none'} <= allowpm, allowpm
        # still locked while the owner fills the form
        assert join_error(carol, room, 'carol') == 'item-not-found'
        name, desc = unique('Name '), unique('Description ')
        configured(bob, room, {
            'muc#roomconfig_roomname': name,
            'muc#roomconfig_roomdesc': desc,
            'muc#roomconfig_changesubject': False,
            'muc#roomconfig_allowinvites': True,
            'muc#roomconfig_publicroom': False,
            'muc#roomconfig_persistentroom': False,
            'muc#roomconfig_moderatedroom': True,
            'muc#roomconfig_membersonly': False,
            'muc#roomconfig_passwordprotectedroom': False,
            'muc#roomconfig_whois': 'anyone',
            'muc#roomconfig_allowpm': 'moderators',
            'muc#maxhistoryfetch': '7',
        })
        form = get_form(bob, room)
        assert values(form['muc#roomconfig_roomname']) == [name]
        assert values(form['muc#roomconfig_roomdesc']) == [desc]
        assert values(form['muc#roomconfig_whois']) == ['anyone']
        assert values(form['muc#roomconfig_allowpm']) == ['moderators']
        assert values(form['muc#roomconfig_moderatedroom']) in (['1'], ['true'])
        assert values(form['muc#roomconfig_publicroom']) in (['0'], ['false'])
        assert values(form['muc#maxhistoryfetch']) == ['7']
        # the owner list is in the form too
        assert 'bob@%s' % HOST in values(form['muc#roomconfig_roomowners'])
        j = joined(carol, room, 'carol')
        assert j.item.get('role') == 'visitor', 'moderated room: a newcomer is a visitor: %s' % tostr(j.self_presence)
        # only owners see the form
        r = iq(carol, 'get', room, "<query xmlns='%s'/>" % NS_MUC_OWNER)
        assert stanza_error(r) == 'forbidden', tostr(r)
        r = configure(carol, room, {'muc#roomconfig_roomname': 'mine'})
        assert stanza_error(r) == 'forbidden', tostr(r)
        destroy(bob, room)
    finally:
        bob.close()
        carol.close()


def test_cancelled_configuration_destroys_the_new_room(server):
    """§10.1.3: a cancel of the initial configuration destroys the room."""
    room = new_room('cancel')
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    try:
        joined(bob, room, 'bob')
        r = iq(bob, 'set', room, "<query xmlns='%s'><x xmlns='%s' type='cancel'/></query>" % (NS_MUC_OWNER, NS_XDATA))
        assert r.get('type') == 'result', tostr(r)
        j = joined(carol, room, 'carol')
        assert 201 in j.codes, 'carol should create the room anew: %s' % tostr(j.self_presence)
        configured(carol, room)
        destroy(carol, room)
    finally:
        bob.close()
        carol.close()


def test_user_of_another_local_host_may_create(server, rooms):
    """access_create defaults to local, which takes in the accounts of
    every host of this server: dave of other.local creates a room on
    conference.test.local, and enters another."""
    r = rooms()
    dave = connect(server, 'dave', host=OTHER)
    r.clients.append(dave)
    room = create_room(dave, 'dave', prefix='dave')
    assert destroy(dave, room).get('type') == 'result'
    j = joined(dave, r.jid, 'dave')
    assert j.item.get('role') == 'participant'


def test_creation_restricted_by_access_create(special):
    """access_create: list (only bob on this server): anybody else gets
    not-allowed on creating (§10.1.1) but may enter bob's rooms."""
    bob = connect(special, 'bob')
    erin = connect(special, 'erin')
    try:
        assert join_error(erin, new_room('not-hers'), 'erin') == 'not-allowed'
        room = create_room(bob, 'bob')
        joined(erin, room, 'erin')
        destroy(bob, room)
    finally:
        bob.close()
        erin.close()


def test_max_rooms_per_user(server):
    """max_rooms_per_user (10): the eleventh room a user would own is
    refused with resource-constraint; destroying one makes room again."""
    user = fresh_user(server, 'owner')
    c = connect(server, user, password='fresh-secret')
    made = []
    try:
        for i in range(10):
            made.append(create_room(c, 'me', prefix='own%d-' % i))
        assert join_error(c, new_room('eleventh'), 'me') == 'resource-constraint'
        assert destroy(c, made.pop()).get('type') == 'result'
        made.append(create_room(c, 'me', prefix='again'))
    finally:
        for room in made:
            destroy(c, room)
        c.close()


def test_room_disco_info_follows_the_configuration(server, rooms):
    """§6.4: identity conference/text named after the room, one feature of
    each pair, and the muc#roominfo form (XEP-0128)."""
    name, desc = unique('Disco room '), unique('About ')
    r = rooms(config={'muc#roomconfig_roomname': name, 'muc#roomconfig_roomdesc': desc,
                      'muc#roomconfig_publicroom': True, 'muc#roomconfig_persistentroom': False,
                      'muc#roomconfig_membersonly': False, 'muc#roomconfig_moderatedroom': False,
                      'muc#roomconfig_whois': 'moderators',
                      'muc#roomconfig_passwordprotectedroom': False})
    r.enter('carol')
    outsider = r.client('erin')
    info = disco_info(outsider, r.jid)
    assert info.get('type') == 'result', tostr(info)
    assert ('conference', 'text', name) in identities(info), tostr(info)
    feats = features(info)
    assert NS_MUC in feats
    for want in ('muc_public', 'muc_temporary', 'muc_open', 'muc_unmoderated', 'muc_semianonymous', 'muc_unsecured'):
        assert want in feats, '%s missing: %s' % (want, sorted(feats))
    for a, b in FEATURE_PAIRS:
        assert (a in feats) != (b in feats), 'exactly one of %s/%s: %s' % (a, b, sorted(feats))
    form = info_form(info, NS_ROOMINFO)
    assert form is not None, 'no muc#roominfo form: %s' % tostr(info)
    assert form.get('muc#roominfo_occupants') == ['2'], form
    assert form.get('muc#roominfo_description') == [desc], form

    configured(r.owner, r.jid, {'muc#roomconfig_publicroom': False, 'muc#roomconfig_membersonly': True,
                                'muc#roomconfig_moderatedroom': True, 'muc#roomconfig_whois': 'anyone',
                                'muc#roomconfig_passwordprotectedroom': True,
                                'muc#roomconfig_roomsecret': 'sesame'})
    feats = features(disco_info(outsider, r.jid))
    for want in ('muc_hidden', 'muc_membersonly', 'muc_moderated', 'muc_nonanonymous', 'muc_passwordprotected'):
        assert want in feats, '%s missing after the change: %s' % (want, sorted(feats))


def test_public_rooms_in_service_items_with_rsm(server, rooms):
    """§6.3 with XEP-0059: public rooms are listed (hidden ones are not),
    and the list pages with max/after, the pages adding up to count."""
    prefix = unique('rsm')
    public = [rooms(prefix=prefix, config={'muc#roomconfig_publicroom': True,
                                           'muc#roomconfig_roomname': 'Public %d' % i}) for i in range(5)]
    hidden = rooms(prefix=prefix, config={'muc#roomconfig_publicroom': False})
    c = public[0].client('erin')
    full = item_jids(disco_items(c, SERVICE))
    for r in public:
        assert r.jid in full, '%s not listed: %s' % (r.jid, full)
    assert hidden.jid not in full
    names = {i.get('jid'): i.get('name') for i in disco_items(c, SERVICE).iter(q(NS_DISCO_ITEMS, 'item'))}
    assert names[public[3].jid] == 'Public 3'

    seen, after, count, pages = [], None, None, 0
    while True:
        rsm = "<set xmlns='%s'><max>2</max>%s</set>" % (NS_RSM, '<after>%s</after>' % after if after else '')
        r = disco_items(c, SERVICE, rsm)
        page = item_jids(r)
        s = r.find('%s/%s' % (q(NS_DISCO_ITEMS, 'query'), q(NS_RSM, 'set')))
        assert len(page) <= 2, 'max 2 asked, %d returned' % len(page)
        pages += 1
        assert pages < 1000
        if not page:
            break
        assert s is not None, 'a partial list without an RSM <set/>: %s' % tostr(r)
        if count is None and s.findtext(q(NS_RSM, 'count')) is not None:
            count = int(s.findtext(q(NS_RSM, 'count')))
        first = s.find(q(NS_RSM, 'first'))
        assert first is not None and first.text and s.findtext(q(NS_RSM, 'last')), tostr(s)
        if first.get('index') is not None:
            assert int(first.get('index')) == len(seen), tostr(s)
        seen += page
        after = s.findtext(q(NS_RSM, 'last'))
        if len(page) < 2:
            break
    assert len(seen) == len(set(seen)), 'an item on two pages: %s' % seen
    for r in public:
        assert r.jid in seen, '%s on no page' % r.jid
    assert hidden.jid not in seen
    if count is not None:
        assert count == len(seen), 'count %d, pages held %d' % (count, len(seen))
    # max 0: only the count (XEP-0059 §2.6)
    r = disco_items(c, SERVICE, "<set xmlns='%s'><max>0</max></set>" % NS_RSM)
    assert item_jids(r) == []
    s = r.find('%s/%s' % (q(NS_DISCO_ITEMS, 'query'), q(NS_RSM, 'set')))
    assert s is not None and int(s.findtext(q(NS_RSM, 'count'))) >= 5, tostr(r)


# ---- entering, presence, leaving -----------------------------------------------------------

def test_join_order_status_codes_and_presence_broadcast(server, rooms):
    """§7.2.3: the occupants' presences first, then the self-presence (110,
    and 100 in a non-anonymous room, §7.2.4), then the history, then the
    subject (§7.2.15); the others get the newcomer's presence, with the real
    JID since anyone may see it."""
    r = rooms(config={'muc#roomconfig_whois': 'anyone'})
    carol = r.enter('carol')
    erin = r.client('erin')
    j = joined(erin, r.jid, 'erin')
    assert {110, 100} <= j.codes, tostr(j.self_presence)
    assert 201 not in j.codes
    assert j.order[0] == 'presence' and j.order.index('self') == len(j.occupants), j.order
    assert j.order[-1] == 'subject', j.order
    assert sorted(resource(p.get('from')) for p in j.occupants) == ['bob', 'carol']
    for p in j.occupants:
        assert bare(item_of(p).get('jid')) in ('bob@%s' % HOST, 'carol@%s' % HOST), tostr(p)
    assert j.item.get('jid') == erin.jid, 'the self-presence names the real JID: %s' % tostr(j.self_presence)
    for c in (r.owner, carol):
        p = take(c, lambda e: is_presence(e, frm=r.jid + '/erin'), 5, "erin's presence")
        assert p.get('type') is None
        assert item_of(p).get('jid') == erin.jid, tostr(p)
        assert item_of(p).get('role') == 'participant' and item_of(p).get('affiliation') == 'none'
        assert 110 not in codes(p)


def test_semi_anonymous_room_shows_jids_to_moderators_only(server, rooms):
    """§7.2.5: in a semi-anonymous room only moderators see real JIDs."""
    r = rooms(config={'muc#roomconfig_whois': 'moderators'})
    carol = r.enter('carol')
    assert 100 not in carol.joined.codes
    owner_view = [p for p in carol.joined.occupants if resource(p.get('from')) == 'bob']
    assert owner_view and item_of(owner_view[0]).get('jid') is None, \
        'a participant sees a real JID: %s' % tostr(owner_view[0])
    p = take(r.owner, lambda e: is_presence(e, frm=r.jid + '/carol'), 5, "carol's presence")
    assert item_of(p).get('jid') == carol.jid, 'the moderator sees the real JID: %s' % tostr(p)


def test_logging_room_code_170(special):
    """§7.2.13: entering a logged room, the self-presence carries 170 (and
    the log under log_dir gets the discussion); §10.2.1 turning logging
    off tells the occupants 171."""
    bob = connect(special, 'bob')
    carol = connect(special, 'carol')
    try:
        room = create_room(bob, 'bob', config={'muc#roomconfig_enablelogging': True,
                                               'muc#roomconfig_publicroom': True})
        j = joined(carol, room, 'carol')
        assert 170 in j.codes, tostr(j.self_presence)
        body = unique('logged-line-')
        say(carol, room, body)
        heard(bob, room, body)
        logdir = special.dir / 'muclogs'
        deadline = time.monotonic() + 10
        found = False
        while not found and time.monotonic() < deadline:
            for root, _, files in os.walk(str(logdir)):
                for f in files:
                    try:        # the server writes pages through temporary files it renames
                        with open(os.path.join(root, f), errors='replace') as fh:
                            if body in fh.read():
                                found = True
                    except OSError:
                        pass
            time.sleep(0.1)
        assert found, 'no file under %s holds the logged line' % logdir
        # turning it off is told to the occupants (§10.2.1: 104 and 171)
        drain(carol, 0.3)
        assert configure(bob, room, {'muc#roomconfig_enablelogging': False}).get('type') == 'result'
        m = take(carol, lambda e: is_message(e, frm=room) and user_x(e) is not None, 5, 'configuration change')
        assert codes(m) == {104, 171}, tostr(m)
        destroy(bob, room)
    finally:
        bob.close()
        carol.close()


def test_no_logging_codes_without_log_dir(server, rooms):
    """With no log_dir the service logs no room: turning
    muc#roomconfig_enablelogging on tells the occupants 104 without 170
    (§10.2.1), and a joiner gets no 170 either (§7.2.13)."""
    r = rooms()
    carol = r.enter('carol')
    drain(carol, 0.3)
    assert configure(r.owner, r.jid, {'muc#roomconfig_enablelogging': True}).get('type') == 'result'
    m = take(carol, lambda e: is_message(e, frm=r.jid) and user_x(e) is not None, 5, 'configuration change')
    assert codes(m) == {104}, tostr(m)
    j = joined(r.client('erin'), r.jid, 'erin')
    assert 170 not in j.codes, tostr(j.self_presence)


def test_nick_change_303(server, rooms):
    """§7.6: unavailable with 303 and the new nick, then the new presence."""
    r = rooms()
    carol = r.enter('carol')
    carol.send("<presence to='%s/caroline'/>" % r.jid)
    for c, own in ((carol, True), (r.owner, False)):
        gone = take(c, lambda e: is_presence(e, frm=r.jid + '/carol', typ='unavailable'), 5, 'unavailable 303')
        assert 303 in codes(gone), tostr(gone)
        assert item_of(gone).get('nick') == 'caroline', tostr(gone)
        assert (110 in codes(gone)) == own
        new = take(c, lambda e: is_presence(e, frm=r.jid + '/caroline'), 5, 'presence of the new nick')
        assert new.get('type') is None and (110 in codes(new)) == own, tostr(new)
    body = unique('renamed-')
    say(carol, r.jid, body)
    assert heard(r.owner, r.jid, body).get('from') == r.jid + '/caroline'


def test_nick_conflict(server, rooms):
    """§7.2.9: a nick in use by another user: conflict; the occupant stays."""
    r = rooms()
    r.enter('carol')
    erin = r.client('erin')
    assert join_error(erin, r.jid, 'carol') == 'conflict'
    # changing one's nick to a taken one is refused as well (§7.6)
    j = joined(erin, r.jid, 'erin')
    assert j.ok
    erin.send("<presence to='%s/carol'/>" % r.jid)
    err = take(erin, lambda e: is_presence(e, typ='error'), 5, 'conflict on nick change')
    assert stanza_error(err) == 'conflict', tostr(err)


def test_leave(server, rooms):
    """§7.14: the leaver gets its own unavailable (110), the others one with
    role none; after it nothing of the room reaches the leaver."""
    r = rooms()
    carol = r.enter('carol')
    own = leave(carol, r.jid, 'carol', status='bye now')
    assert item_of(own).get('role') == 'none', tostr(own)
    p = take(r.owner, lambda e: is_presence(e, frm=r.jid + '/carol', typ='unavailable'), 5, 'unavailable')
    assert item_of(p).get('role') == 'none' and 110 not in codes(p), tostr(p)
    # (§7.14 lets the occupant give an exit message; it does not say in so
    # many words that the room passes it on, so that is not checked)
    # gone: messages no longer reach her
    body = unique('after-leave-')
    say(r.owner, r.jid, body)
    heard(r.owner, r.jid, body)
    nothing(carol, lambda e: is_message(e, body=body), 0.5)


def test_kick_307(server, rooms):
    """§8.2: a moderator kicks a participant: 307 with the reason to both
    the kicked (with 110) and the rest; a participant may not kick, and
    nobody kicks an owner."""
    r = rooms()
    carol = r.enter('carol')
    erin = r.enter('erin')
    res = set_role(erin, r.jid, 'carol', 'none', 'not my call')
    assert stanza_error(res) == 'forbidden', tostr(res)
    res = set_role(r.owner, r.jid, 'carol', 'none', 'behave')
    assert res.get('type') == 'result', tostr(res)
    for c, own in ((carol, True), (erin, False), (r.owner, False)):
        p = take(c, lambda e: is_presence(e, frm=r.jid + '/carol', typ='unavailable'), 5, 'kick presence')
        assert 307 in codes(p) and (110 in codes(p)) == own, tostr(p)
        assert item_of(p).get('role') == 'none'
        assert item_of(p).findtext(q(NS_MUC_USER, 'reason')) == 'behave', tostr(p)
    # a kicked user may come back (unlike a banned one)
    joined(carol, r.jid, 'carol')
    # a moderator who is not an owner cannot kick the owner (§8.2: not-allowed)
    assert set_role(r.owner, r.jid, 'erin', 'moderator').get('type') == 'result'
    res = set_role(erin, r.jid, 'bob', 'none')
    assert stanza_error(res) == 'not-allowed', tostr(res)


def test_moderator_may_not_kick_or_silence_a_higher_affiliation(server, rooms):
    """§8.2, §8.4, §8.5: a moderator whose affiliation is lower than an
    occupant's may neither kick it nor take its voice (not-allowed, and
    the occupant keeps its role); an occupant of the moderator's own
    affiliation it may silence."""
    r = rooms()
    assert set_affiliation(r.owner, r.jid, 'erin@' + HOST, 'member').get('type') == 'result'
    carol = r.enter('carol')
    erin = r.enter('erin')
    plain = r.enter(fresh_user(server), 'plain')
    assert set_role(r.owner, r.jid, 'carol', 'moderator').get('type') == 'result'
    drain(erin, 0.3)
    for role in ('visitor', 'none'):
        res = set_role(carol, r.jid, 'erin', role)
        assert stanza_error(res) == 'not-allowed' and error_type(res) == 'cancel', tostr(res)
    nothing(erin, lambda e: is_presence(e, frm=r.jid + '/erin'), 0.5)
    assert admin_list(r.owner, r.jid, role='participant')['erin'].get('affiliation') == 'member'
    res = set_role(carol, r.jid, 'plain', 'visitor')
    assert res.get('type') == 'result', tostr(res)
    p = take(plain, lambda e: is_presence(e, frm=r.jid + '/plain') and 110 in codes(e), 5, 'voice revoked')
    assert item_of(p).get('role') == 'visitor', tostr(p)


def test_ban_301(server, rooms):
    """§9.1: an admin bans by bare JID: 301 to all, the banned user may not
    come back (§7.2.8 forbidden), and is on the outcast list (§9.2)."""
    r = rooms()
    carol = r.enter('carol')
    res = set_affiliation(r.owner, r.jid, 'carol@' + HOST, 'outcast', 'spam')
    assert res.get('type') == 'result', tostr(res)
    for c, own in ((carol, True), (r.owner, False)):
        p = take(c, lambda e: is_presence(e, frm=r.jid + '/carol', typ='unavailable'), 5, 'ban presence')
        assert 301 in codes(p) and (110 in codes(p)) == own, tostr(p)
        assert item_of(p).get('affiliation') == 'outcast' and item_of(p).get('role') == 'none', tostr(p)
        assert item_of(p).findtext(q(NS_MUC_USER, 'reason')) == 'spam'
    assert join_error(carol, r.jid, 'carol') == 'forbidden'
    other = r.client('carol')          # any resource of hers
    assert join_error(other, r.jid, 'carol-again') == 'forbidden'
    outcasts = admin_list(r.owner, r.jid, affiliation='outcast')
    assert 'carol@' + HOST in outcasts, outcasts
    assert outcasts['carol@' + HOST].findtext(q(NS_MUC_ADMIN, 'reason')) == 'spam'
    # a participant may not see or change the list
    erin = r.enter('erin')
    res = iq(erin, 'get', r.jid, "<query xmlns='%s'><item affiliation='outcast'/></query>" % NS_MUC_ADMIN)
    assert stanza_error(res) == 'forbidden', tostr(res)
    res = set_affiliation(erin, r.jid, 'bob@' + HOST, 'outcast')
    assert stanza_error(res) in ('forbidden', 'not-allowed'), tostr(res)
    # lifting the ban
    assert set_affiliation(r.owner, r.jid, 'carol@' + HOST, 'none').get('type') == 'result'
    joined(carol, r.jid, 'carol')


def test_admin_or_owner_may_not_ban_himself(server, rooms):
    """§9.1: an owner or an admin who bans himself (by JID or by his nick)
    gets conflict; he stays in the room with his affiliation and the
    outcast list stays empty."""
    r = rooms()
    assert set_affiliation(r.owner, r.jid, 'carol@' + HOST, 'owner').get('type') == 'result'
    assert set_affiliation(r.owner, r.jid, 'erin@' + HOST, 'admin').get('type') == 'result'
    erin = r.enter('erin')
    drain(r.owner, 0.3)
    for c, item in ((r.owner, "jid='bob@%s/elsewhere'" % HOST), (r.owner, "nick='bob'"),
                    (erin, "jid='erin@%s'" % HOST), (erin, "nick='erin'")):
        res = admin_query(c, r.jid, "<item affiliation='outcast' %s><reason>oops</reason></item>" % item)
        assert stanza_error(res) == 'conflict' and error_type(res) == 'cancel', tostr(res)
    nothing(r.owner, lambda e: is_presence(e, room=r.jid, typ='unavailable'), 0.5)
    assert admin_list(r.owner, r.jid, affiliation='outcast') == {}
    assert 'bob@' + HOST in admin_list(r.owner, r.jid, affiliation='owner')
    assert 'erin@' + HOST in admin_list(r.owner, r.jid, affiliation='admin')
    assert set(admin_list(r.owner, r.jid, role='moderator')) == {'bob', 'erin'}


def test_moderated_room_voice_request_and_grant(server, rooms):
    """§7.4 visitors may not speak (forbidden); §7.13 a voice request goes
    to the moderators as a muc#request form; §8.3 granting voice; §8.5 the
    participant and moderator lists."""
    r = rooms(config={'muc#roomconfig_moderatedroom': True})
    carol = r.enter('carol')
    assert carol.joined.item.get('role') == 'visitor', tostr(carol.joined.self_presence)
    body = unique('mute-')
    say(carol, r.jid, body)
    err = take(carol, lambda e: is_message(e, typ='error'), 5, 'error for a visitor')
    assert stanza_error(err) == 'forbidden', tostr(err)
    nothing(r.owner, lambda e: is_message(e, body=body), 0.5)

    carol.send("<message to='%s'><x xmlns='%s' type='submit'>%s%s</x></message>"
               % (r.jid, NS_XDATA, field_xml('FORM_TYPE', NS_MUC_REQUEST), field_xml('muc#role', 'participant')))
    req = take(r.owner, lambda e: is_message(e, frm=r.jid) and e.find(q(NS_XDATA, 'x')) is not None, 5,
               'voice request')
    fields = {f.get('var'): values(f) for f in req.find(q(NS_XDATA, 'x')).findall(q(NS_XDATA, 'field'))}
    assert fields.get('FORM_TYPE') == [NS_MUC_REQUEST], fields
    assert fields.get('muc#role') == ['participant'], fields
    assert fields.get('muc#roomnick') == ['carol'], fields
    assert bare(fields.get('muc#jid', [''])[0]) == 'carol@' + HOST, fields

    res = set_role(r.owner, r.jid, 'carol', 'participant')
    assert res.get('type') == 'result', tostr(res)
    p = take(carol, lambda e: is_presence(e, frm=r.jid + '/carol') and 110 in codes(e), 5, 'voice presence')
    assert item_of(p).get('role') == 'participant', tostr(p)
    body = unique('voiced-')
    say(carol, r.jid, body)
    heard(r.owner, r.jid, body)
    assert 'carol' in admin_list(r.owner, r.jid, role='participant')
    assert 'bob' in admin_list(r.owner, r.jid, role='moderator')
    # revoking it again (§8.4)
    assert set_role(r.owner, r.jid, 'carol', 'visitor').get('type') == 'result'
    p = take(carol, lambda e: is_presence(e, frm=r.jid + '/carol') and 110 in codes(e)
             and item_of(e).get('role') == 'visitor', 5, 'voice revoked')
    assert 'carol' in admin_list(r.owner, r.jid, role='visitor')


def test_members_only_room_and_member_list(server, rooms):
    """§7.2.7: a non-member gets registration-required; §9.3 an admin adds
    a member, who may then enter; §9.5 the member list."""
    r = rooms(config={'muc#roomconfig_membersonly': True})
    carol = r.client('carol')
    assert join_error(carol, r.jid, 'carol') == 'registration-required'
    res = set_affiliation(r.owner, r.jid, 'carol@' + HOST, 'member')
    assert res.get('type') == 'result', tostr(res)
    j = joined(carol, r.jid, 'carol')
    assert j.item.get('affiliation') == 'member', tostr(j.self_presence)
    assert 'carol@' + HOST in admin_list(r.owner, r.jid, affiliation='member')
    # removing the membership removes her from the room (§9.4, 321)
    assert set_affiliation(r.owner, r.jid, 'carol@' + HOST, 'none').get('type') == 'result'
    p = take(carol, lambda e: is_presence(e, frm=r.jid + '/carol', typ='unavailable'), 5, 'removal')
    assert 321 in codes(p) and 110 in codes(p), tostr(p)


def test_admin_and_owner_lists(server, rooms):
    """§10.3-§10.8: an owner grants owner and admin; the lists show them;
    an admin may not grant admin or owner."""
    r = rooms()
    carol = r.enter('carol')
    res = set_affiliation(r.owner, r.jid, 'carol@' + HOST, 'admin')
    assert res.get('type') == 'result', tostr(res)
    p = take(carol, lambda e: is_presence(e, frm=r.jid + '/carol') and 110 in codes(e), 5, 'admin presence')
    assert item_of(p).get('affiliation') == 'admin' and item_of(p).get('role') == 'moderator', tostr(p)
    assert 'carol@' + HOST in admin_list(r.owner, r.jid, affiliation='admin')
    assert 'bob@' + HOST in admin_list(r.owner, r.jid, affiliation='owner')
    res = set_affiliation(carol, r.jid, 'erin@' + HOST, 'admin')
    assert stanza_error(res) in ('forbidden', 'not-allowed'), tostr(res)
    res = set_affiliation(carol, r.jid, 'erin@' + HOST, 'owner')
    assert stanza_error(res) in ('forbidden', 'not-allowed'), tostr(res)
    res = set_affiliation(r.owner, r.jid, 'erin@' + HOST, 'owner')
    assert res.get('type') == 'result', tostr(res)
    owners = admin_list(r.owner, r.jid, affiliation='owner')
    assert {'bob@' + HOST, 'erin@' + HOST} <= set(owners), owners
    # the owner list may also be read through muc#owner (older clients)
    res = iq(r.owner, 'get', r.jid, "<query xmlns='%s'><item affiliation='owner'/></query>" % NS_MUC_OWNER)
    jids = {i.get('jid') for i in res.iter(q(NS_MUC_OWNER, 'item'))}
    if jids:
        assert {'bob@' + HOST, 'erin@' + HOST} <= jids, tostr(res)
    # the last owner cannot step down (§10.4: conflict)
    assert set_affiliation(r.owner, r.jid, 'erin@' + HOST, 'none').get('type') == 'result'
    res = set_affiliation(r.owner, r.jid, 'bob@' + HOST, 'admin')
    assert stanza_error(res) == 'conflict', tostr(res)


def test_no_request_leaves_the_room_without_owner(server, rooms):
    """§10.2, §10.4: an owner may not give up ownership when no other owner
    is left, whatever the request: the configuration form listing the only
    owner among the admins, or one muc#admin request demoting every owner,
    answer <conflict/> and change nothing; a request that leaves another
    owner is fine."""
    r = rooms()
    bob, carol, erin = ('%s@%s' % (u, HOST) for u in ('bob', 'carol', 'erin'))
    res = configure(r.owner, r.jid, {'muc#roomconfig_roomadmins': [bob]})
    assert stanza_error(res) == 'conflict' and error_type(res) == 'cancel', tostr(res)
    assert set(admin_list(r.owner, r.jid, affiliation='owner')) == {bob}
    assert admin_list(r.owner, r.jid, affiliation='admin') == {}
    assert set_affiliation(r.owner, r.jid, carol, 'owner').get('type') == 'result'
    res = admin_query(r.owner, r.jid, "<item affiliation='admin' jid='%s'/><item affiliation='admin' jid='%s'/>"
                      % (carol, bob))
    assert stanza_error(res) == 'conflict' and error_type(res) == 'cancel', tostr(res)
    assert set(admin_list(r.owner, r.jid, affiliation='owner')) == {bob, carol}
    assert admin_list(r.owner, r.jid, affiliation='admin') == {}
    # demoted in one request, with a new owner in the same request: fine
    res = admin_query(r.owner, r.jid, "<item affiliation='admin' jid='%s'/><item affiliation='owner' jid='%s'/>"
                      "<item affiliation='none' jid='%s'/>" % (carol, erin, bob))
    assert res.get('type') == 'result', tostr(res)
    erin_c = r.client('erin')
    assert set(admin_list(erin_c, r.jid, affiliation='owner')) == {erin}
    # the form may hand the room over, the owner list naming the new owner
    res = configure(erin_c, r.jid, {'muc#roomconfig_roomadmins': [erin], 'muc#roomconfig_roomowners': [bob]})
    assert res.get('type') == 'result', tostr(res)
    assert set(admin_list(r.owner, r.jid, affiliation='owner')) == {bob}
    assert set(admin_list(r.owner, r.jid, affiliation='admin')) == {erin}


def test_owner_stepping_down_is_the_actor_of_the_later_items(server):
    """§10.4: an owner may step down in the request that names another
    owner.  In a members-only room the item that takes his affiliation
    removes him (321); the items after it still name him, by his nick, as
    their actor, and the other occupants get well-formed presences."""
    nick = 'bob-the-owner-stepping-down'
    bob = connect(server, 'bob')
    erin = connect(server, 'erin')
    try:
        room = create_room(bob, nick, config={'muc#roomconfig_membersonly': True})
        assert set_affiliation(bob, room, 'erin@' + HOST, 'member').get('type') == 'result'
        joined(erin, room, 'erin')
        drain(bob, 0.3)
        res = admin_query(bob, room, "<item affiliation='owner' jid='carol@%s'/><item affiliation='none' jid='bob@%s'/>"
                          "<item affiliation='admin' jid='erin@%s'/>" % (HOST, HOST, HOST))
        assert res.get('type') == 'result', tostr(res)
        gone = take(erin, lambda e: is_presence(e, frm=room + '/' + nick, typ='unavailable'), 5, '321')
        assert 321 in codes(gone), tostr(gone)
        assert item_of(gone).find(q(NS_MUC_USER, 'actor')).get('nick') == nick, tostr(gone)
        p = take(erin, lambda e: is_presence(e, frm=room + '/erin') and 110 in codes(e), 5, 'admin presence')
        assert item_of(p).get('affiliation') == 'admin', tostr(p)
        assert item_of(p).find(q(NS_MUC_USER, 'actor')).get('nick') == nick, tostr(p)
        own = take(bob, lambda e: is_presence(e, frm=room + '/' + nick, typ='unavailable'), 5, 'own 321')
        assert {321, 110} <= codes(own), tostr(own)
        assert set(admin_list(erin, room, affiliation='owner')) == {'carol@' + HOST}
    finally:
        bob.close()
        erin.close()


def test_password_protected_room(server, rooms):
    """§7.2.6: no or a wrong password: not-authorized; the right one enters."""
    r = rooms(config={'muc#roomconfig_passwordprotectedroom': True, 'muc#roomconfig_roomsecret': 'open-sesame'})
    carol = r.client('carol')
    assert join_error(carol, r.jid, 'carol') == 'not-authorized'
    assert join_error(carol, r.jid, 'carol', password='wrong') == 'not-authorized'
    joined(carol, r.jid, 'carol', password='open-sesame')
    # the owner, who can read the password in the form, comes back without it
    leave(r.owner, r.jid, 'bob')
    joined(r.owner, r.jid, 'bob')


def test_room_full_service_unavailable(special):
    """§7.2.10: a full room (default_max_users 3 on this server) refuses
    a newcomer with service-unavailable; an admin of the room still gets
    in (a room MUST always allow entry by an admin or owner)."""
    users = []
    try:
        bob = connect(special, 'bob')
        users.append(bob)
        room = create_room(bob, 'bob')
        for u in ('carol', 'erin'):
            c = connect(special, u)
            users.append(c)
            joined(c, room, u)
        extra = fresh_user(special)
        x = connect(special, extra, password='fresh-secret')
        users.append(x)
        assert join_error(x, room, 'extra') == 'service-unavailable'
        boss = fresh_user(special)
        assert set_affiliation(bob, room, boss + '@' + HOST, 'admin').get('type') == 'result'
        y = connect(special, boss, password='fresh-secret')
        users.append(y)
        j = joined(y, room, 'boss')
        assert j.item.get('affiliation') == 'admin', tostr(j.self_presence)
        destroy(bob, room)
    finally:
        for c in users:
            c.close()


# ---- nick registration ------------------------------------------------------------------------

def test_nick_registration_reserves_the_nick(server, rooms):
    """§7.10: the registration form, registering a nick, the nick reserved
    (conflict for others, §7.2.9), §7.12 discovering it, and unregistering."""
    r = rooms()
    user = fresh_user(server, 'reg')
    c = connect(server, user, password='fresh-secret')
    r.clients.append(c)
    nick = unique('Nick')
    res = iq(c, 'get', r.jid, "<query xmlns='%s'/>" % NS_REGISTER)
    assert res.get('type') == 'result', tostr(res)
    x = res.find('%s/%s' % (q(NS_REGISTER, 'query'), q(NS_XDATA, 'x')))
    assert x is not None, tostr(res)
    fields = {f.get('var'): f for f in x.findall(q(NS_XDATA, 'field'))}
    assert values(fields['FORM_TYPE']) == [NS_MUC_REGISTER], tostr(res)
    assert 'muc#register_roomnick' in fields, tostr(res)
    res = iq(c, 'set', r.jid, "<query xmlns='%s'><x xmlns='%s' type='submit'>%s%s</x></query>"
             % (NS_REGISTER, NS_XDATA, field_xml('FORM_TYPE', NS_MUC_REGISTER), field_xml('muc#register_roomnick', nick)))
    assert res.get('type') == 'result', tostr(res)
    # §7.12: the reserved nick (an optional feature: without it the
    # answer must be feature-not-implemented)
    info = disco_info(c, r.jid, node='x-roomuser-item')
    if stanza_error(info) != 'feature-not-implemented':
        assert info.get('type') == 'result', tostr(info)
        assert [n for cat, typ, n in identities(info) if cat == 'conference'] == [nick], tostr(info)
    # somebody else with that nick: conflict
    erin = r.client('erin')
    assert join_error(erin, r.jid, nick) == 'conflict'
    # another user registering the same nick: conflict
    res = iq(erin, 'set', r.jid, "<query xmlns='%s'><x xmlns='%s' type='submit'>%s%s</x></query>"
             % (NS_REGISTER, NS_XDATA, field_xml('FORM_TYPE', NS_MUC_REGISTER), field_xml('muc#register_roomnick', nick)))
    assert stanza_error(res) == 'conflict', tostr(res)
    # the owner of the nick may use it
    joined(c, r.jid, nick)
    # registered: the form says so
    res = iq(c, 'get', r.jid, "<query xmlns='%s'/>" % NS_REGISTER)
    assert res.find('%s/%s' % (q(NS_REGISTER, 'query'), q(NS_REGISTER, 'registered'))) is not None, tostr(res)
    leave(c, r.jid, nick)
    # cancelling the registration (XEP-0077 <remove/>; XEP-0045 does not
    # define it, so only a service that accepts it must free the nick)
    res = iq(c, 'set', r.jid, "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
    if res.get('type') == 'result':
        joined(erin, r.jid, nick)


def test_join_with_modified_nick_says_210(server, rooms):
    """§7.2.3 / status 210: when the service changes the nick it was asked
    for (here by the stringprep NFKC of resourceprep: U+FB01 is 'fi'), the
    self-presence comes from the nick it chose and carries 210."""
    r = rooms()
    carol = r.client('carol')
    asked = '\ufb01sh'
    carol.send(join_stanza(r.jid, asked))
    p = take(carol, lambda e: is_presence(e, room=r.jid) and (110 in codes(e) or e.get('type') == 'error'),
             5, 'self-presence')
    assert p.get('type') != 'error', tostr(p)
    got = resource(p.get('from'))
    if got != asked:
        assert got == 'fish', tostr(p)
        assert 210 in codes(p), 'nick %r became %r without 210: %s' % (asked, got, tostr(p))


# ---- destroy -------------------------------------------------------------------------------------

def test_destroy_with_reason_and_alternate_venue(server):
    """§10.9: every occupant gets unavailable with <destroy/> (reason and
    alternate venue); the room is gone; non-owners may not destroy."""
    bob = connect(server, 'bob')
    carol = connect(server, 'carol')
    try:
        room = create_room(bob, 'bob')
        venue = new_room('venue')
        joined(carol, room, 'carol')
        res = destroy(carol, room, 'mine now')
        assert stanza_error(res) == 'forbidden', tostr(res)
        res = destroy(bob, room, 'moving out', venue)
        assert res.get('type') == 'result', tostr(res)
        for c, nick in ((bob, 'bob'), (carol, 'carol')):
            p = take(c, lambda e: is_presence(e, frm=room + '/' + nick, typ='unavailable'), 5, 'destroy presence')
            d = user_x(p).find(q(NS_MUC_USER, 'destroy'))
            assert d is not None, tostr(p)
            assert d.get('jid') == venue and d.findtext(q(NS_MUC_USER, 'reason')) == 'moving out', tostr(p)
            assert item_of(p).get('role') == 'none'
        r = disco_info(carol, room)
        assert stanza_error(r) == 'item-not-found', tostr(r)
    finally:
        bob.close()
        carol.close()


# ---- history and subject -------------------------------------------------------------------------

def test_history_on_join(server, rooms):
    """§7.2.15-§7.2.16: history with <delay/> from the room's JID, between
    the self-presence and the subject; maxstanzas, maxchars, seconds and
    since limit it."""
    r = rooms()
    carol = r.enter('carol')
    early = [unique('h%d-' % i) for i in range(4)]
    for b in early:
        say(carol, r.jid, b)
        heard(carol, r.jid, b)
    time.sleep(2.5)
    cut = datetime.now(timezone.utc)
    time.sleep(0.5)
    late = unique('late-')
    say(carol, r.jid, late)
    heard(carol, r.jid, late)
    everything = early + [late]

    erin = r.client('erin')

    def history(**h):
        j = joined(erin, r.jid, 'erin', history=h or None)
        leave(erin, r.jid, 'erin')
        return j

    j = history()
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in j.history] == everything
    assert j.order.index('self') < j.order.index('history') and j.order[-1] == 'subject', j.order
    for m in j.history:
        d = delay_of(m)
        assert d.get('from') == r.jid, 'delay from %s, expected the room: %s' % (d.get('from'), tostr(m))
        assert d.get('stamp'), tostr(m)
        assert m.get('from') == r.jid + '/carol' and m.get('type') == 'groupchat', tostr(m)
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in history(maxstanzas='2').history] == everything[-2:]
    assert history(maxstanzas='0').history == []
    assert history(maxchars='0').history == []
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in history(seconds='2').history] == [late]
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in
            history(since=cut.strftime('%Y-%m-%dT%H:%M:%S.%fZ')).history] == [late]
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert history(since=future).history == []
    # The same instants with a zone offset (XEP-0082): 02:30 east.
    east = timezone(timedelta(hours=2, minutes=30))
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in
            history(since=cut.astimezone(east).strftime('%Y-%m-%dT%H:%M:%S.%f+02:30')).history] == [late]
    assert history(since=(datetime.now(east) + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%S+02:30')).history == []


def test_history_more_than_max_output(server, rooms):
    """The history comes at once on join: 20 messages of 60 KB (history_size
    20, the default) are more than limits.max_output (1M here), but a
    joiner that reads gets them all and stays in the room."""
    r = rooms()
    carol = r.enter('carol')
    bodies = ['%s %s' % (unique('big%d-' % i), 'g' * 60000) for i in range(20)]
    for b in bodies:
        say(carol, r.jid, b)
        heard(carol, r.jid, b, timeout=10)
        time.sleep(0.2)          # within message_rate (5/s)
    erin = r.enter('erin', timeout=30)
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in erin.joined.history] == bodies
    body = unique('after-history-')
    say(r.owner, r.jid, body)
    heard(erin, r.jid, body)


def test_maxhistoryfetch_limits_history(server, rooms):
    """§15.5.3: muc#maxhistoryfetch is the most history a joiner gets,
    whatever its <history/> asks; 0 is none."""
    r = rooms(config={'muc#maxhistoryfetch': '0'})
    assert values(get_form(r.owner, r.jid)['muc#maxhistoryfetch']) == ['0']
    bodies = [unique('mh%d-' % i) for i in range(3)]
    for b in bodies:
        say(r.owner, r.jid, b)
        heard(r.owner, r.jid, b)
    carol = r.client('carol')
    for h in (None, {'maxstanzas': '5'}):
        j = joined(carol, r.jid, 'carol', history=h)
        assert j.history == [], [tostr(m) for m in j.history]
        leave(carol, r.jid, 'carol')
    configured(r.owner, r.jid, {'muc#maxhistoryfetch': '1'})
    j = joined(carol, r.jid, 'carol')
    assert [m.findtext(q(NS_CLIENT, 'body')) for m in j.history] == bodies[-1:]


def test_history_size_limit(special):
    """history_size (5 on this server) bounds what a newcomer gets."""
    bob = connect(special, 'bob')
    carol = connect(special, 'carol')
    try:
        room = create_room(bob, 'bob')
        bodies = [unique('hs%d-' % i) for i in range(8)]
        for b in bodies:
            say(bob, room, b)
            heard(bob, room, b)
        j = joined(carol, room, 'carol')
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in j.history] == bodies[-5:]
        destroy(bob, room)
    finally:
        bob.close()
        carol.close()


def test_subject(server, rooms):
    """§7.2.16 an empty subject when none is set; §8.1 a change reaches
    everybody and newcomers, from the setter's occupant JID; without
    changesubject a participant gets forbidden."""
    r = rooms(config={'muc#roomconfig_changesubject': False})
    carol = r.enter('carol')
    subj = carol.joined.subject
    assert subj.get('from') in (r.jid, r.jid + '/bob') and (subj.findtext(q(NS_CLIENT, 'subject')) or '') == '', \
        tostr(subj)
    topic = unique('Topic ')
    r.owner.send("<message to='%s' type='groupchat'><subject>%s</subject></message>" % (r.jid, topic))
    for c in (r.owner, carol):
        m = take(c, lambda e: is_subject_message(e, r.jid) and e.findtext(q(NS_CLIENT, 'subject')) == topic, 5,
                 'subject change')
        assert m.get('from') == r.jid + '/bob', tostr(m)
    carol.send("<message to='%s' type='groupchat' id='subj1'><subject>mine</subject></message>" % r.jid)
    err = take(carol, lambda e: is_message(e, typ='error') and e.get('id') == 'subj1', 5, 'subject refused')
    assert stanza_error(err) == 'forbidden', tostr(err)
    erin = r.enter('erin')
    assert erin.joined.subject.findtext(q(NS_CLIENT, 'subject')) == topic, tostr(erin.joined.subject)
    # allowed for participants once changesubject is on
    configured(r.owner, r.jid, {'muc#roomconfig_changesubject': True})
    carol.send("<message to='%s' type='groupchat'><subject>ours</subject></message>" % r.jid)
    m = take(erin, lambda e: is_subject_message(e, r.jid) and e.findtext(q(NS_CLIENT, 'subject')) == 'ours', 5,
             'subject by a participant')
    assert m.get('from') == r.jid + '/carol'


# ---- messages ------------------------------------------------------------------------------------

def test_groupchat_reaches_every_occupant(server, rooms):
    """§7.4: a groupchat message is reflected to every occupant, the sender
    included, from the sender's occupant JID."""
    r = rooms()
    carol = r.enter('carol')
    erin = r.enter('erin')
    body = unique('all-of-you-')
    say(carol, r.jid, body)
    for c in (r.owner, carol, erin):
        m = heard(c, r.jid, body)
        assert m.get('from') == r.jid + '/carol' and m.get('type') == 'groupchat', tostr(m)
        assert m.get('to') == c.jid, tostr(m)


def test_groupchat_with_an_id_ending_in_to(server, rooms):
    """The sender's id is copied into every occupant's copy before its
    'to': an id that ends in ' to=' must not be taken for the 'to' when
    the room writes each occupant's address into the copy it serialised
    once (each copy came out malformed, ending the occupants' streams)."""
    r = rooms()
    carol = r.enter('carol')
    erin = r.enter('erin')
    body = unique('odd-id-')
    carol.send('<message to="%s" type="groupchat" id="a to="><body>%s</body></message>' % (r.jid, body))
    for c in (r.owner, carol, erin):
        m = heard(c, r.jid, body)
        assert m.get('id') == 'a to=' and m.get('to') == c.jid, tostr(m)
    # and the room goes on
    say(erin, r.jid, 'after')
    heard(carol, r.jid, 'after')


def test_private_messages(server, rooms):
    """§7.5: chat to an occupant JID reaches that occupant from the sender's
    occupant JID; an absent nick: item-not-found; groupchat to an occupant:
    bad-request; allowpm none: refused."""
    r = rooms()
    carol = r.enter('carol')
    erin = r.enter('erin')
    body = unique('psst-')
    say(carol, r.jid, body, to=r.jid + '/erin', typ='chat', extra="<x xmlns='%s'/>" % NS_MUC_USER)
    m = heard(erin, r.jid, body)
    assert m.get('from') == r.jid + '/carol' and m.get('type') == 'chat', tostr(m)
    nothing(r.owner, lambda e: is_message(e, body=body), 0.5)
    erin.send("<message to='%s/carol' type='chat'><body>back</body></message>" % r.jid)
    assert heard(carol, r.jid, 'back').get('from') == r.jid + '/erin'

    carol.send("<message to='%s/ghost' type='chat' id='pm-ghost'><body>anyone?</body></message>" % r.jid)
    err = take(carol, lambda e: is_message(e, typ='error') and e.get('id') == 'pm-ghost', 5, 'error')
    assert stanza_error(err) == 'item-not-found', tostr(err)
    carol.send("<message to='%s/erin' type='groupchat' id='gc-pm'><body>wrong type</body></message>" % r.jid)
    err = take(carol, lambda e: is_message(e, typ='error') and e.get('id') == 'gc-pm', 5, 'error')
    assert stanza_error(err) == 'bad-request', tostr(err)

    configured(r.owner, r.jid, {'muc#roomconfig_allowpm': 'none'})
    carol.send("<message to='%s/erin' type='chat' id='pm-none'><body>%s</body></message>" % (r.jid, unique('no-')))
    err = take(carol, lambda e: is_message(e, typ='error') and e.get('id') == 'pm-none', 5, 'error')
    assert stanza_error(err) in ('forbidden', 'not-acceptable', 'not-allowed'), tostr(err)


def test_non_occupant_groupchat_not_acceptable(server, rooms):
    """§7.4 (cf. §7.2.15 errors): a groupchat message from somebody not in
    the room is refused with not-acceptable and reaches nobody."""
    r = rooms()
    carol = r.enter('carol')
    erin = r.client('erin')
    body = unique('outsider-')
    erin.send("<message to='%s' type='groupchat' id='outside'><body>%s</body></message>" % (r.jid, body))
    err = take(erin, lambda e: is_message(e, typ='error') and e.get('id') == 'outside', 5, 'error')
    assert stanza_error(err) == 'not-acceptable', tostr(err)
    nothing(carol, lambda e: is_message(e, body=body), 0.5)


def test_mediated_invitation_and_decline(server, rooms):
    """§7.8.2: an invitation through the room reaches the invitee from the
    room with the inviter's JID and reason (and the password); §7.8.2 the
    decline goes back the same way."""
    r = rooms(config={'muc#roomconfig_passwordprotectedroom': True, 'muc#roomconfig_roomsecret': 'pw1',
                      'muc#roomconfig_allowinvites': True})
    carol = r.client('carol')
    r.owner.send("<message to='%s'><x xmlns='%s'><invite to='carol@%s'><reason>join us</reason></invite></x></message>"
                 % (r.jid, NS_MUC_USER, HOST))
    m = take(carol, lambda e: is_message(e, frm=r.jid) and user_x(e) is not None
             and user_x(e).find(q(NS_MUC_USER, 'invite')) is not None, 5, 'invitation')
    inv = user_x(m).find(q(NS_MUC_USER, 'invite'))
    # the bare JID, full JID or occupant JID of the inviter (§7.8.2)
    assert bare(inv.get('from')) == 'bob@' + HOST or inv.get('from') == r.jid + '/bob', tostr(m)
    assert inv.findtext(q(NS_MUC_USER, 'reason')) == 'join us', tostr(m)
    assert user_x(m).findtext(q(NS_MUC_USER, 'password')) == 'pw1', tostr(m)
    carol.send("<message to='%s'><x xmlns='%s'><decline to='bob@%s'><reason>busy</reason></decline></x></message>"
               % (r.jid, NS_MUC_USER, HOST))
    m = take(r.owner, lambda e: is_message(e, frm=r.jid) and user_x(e) is not None
             and user_x(e).find(q(NS_MUC_USER, 'decline')) is not None, 5, 'decline')
    dec = user_x(m).find(q(NS_MUC_USER, 'decline'))
    assert bare(dec.get('from')) == 'carol@' + HOST, tostr(m)
    assert dec.findtext(q(NS_MUC_USER, 'reason')) == 'busy'


def test_invitation_by_participant_refused_without_allowinvites(server, rooms):
    """§7.8.2: in a room where occupants may not invite others
    (allowinvites off), an invitation from a participant is refused with
    forbidden."""
    r = rooms(config={'muc#roomconfig_allowinvites': False})
    carol = r.enter('carol')
    carol.send("<message to='%s' id='inv-no'><x xmlns='%s'><invite to='erin@%s'/></x></message>"
               % (r.jid, NS_MUC_USER, HOST))
    err = take(carol, lambda e: is_message(e, typ='error') and e.get('id') == 'inv-no', 5, 'error')
    assert stanza_error(err) == 'forbidden', tostr(err)


def test_member_invitation_to_members_only_room_makes_a_member(server, rooms):
    """§9.5: in a members-only room where members may invite
    (allowinvites), a member's invitation adds the invitee to the member
    list, so the invitee may enter; an invitation to a domain makes no
    member of it."""
    r = rooms(config={'muc#roomconfig_membersonly': True, 'muc#roomconfig_allowinvites': True})
    assert set_affiliation(r.owner, r.jid, 'carol@' + HOST, 'member').get('type') == 'result'
    carol = r.enter('carol')
    erin = r.client('erin')
    carol.send("<message to='%s' id='inv-member'><x xmlns='%s'><invite to='erin@%s'><reason>join us</reason>"
               "</invite><invite to='%s'/></x></message>" % (r.jid, NS_MUC_USER, HOST, HOST))
    m = take(erin, lambda e: is_message(e, frm=r.jid) and user_x(e) is not None
             and user_x(e).find(q(NS_MUC_USER, 'invite')) is not None, 5, 'invitation')
    assert user_x(m).find(q(NS_MUC_USER, 'invite')).findtext(q(NS_MUC_USER, 'reason')) == 'join us', tostr(m)
    members = admin_list(r.owner, r.jid, affiliation='member')
    assert set(members) == {'carol@' + HOST, 'erin@' + HOST}, members
    j = joined(erin, r.jid, 'erin')
    assert j.item.get('affiliation') == 'member', tostr(j.self_presence)
    nothing(carol, lambda e: is_message(e, typ='error'), 0.3)


def test_direct_invitation_passes_through(server, rooms):
    """XEP-0249: a jabber:x:conference invitation goes user to user, untouched."""
    r = rooms()
    carol = r.client('carol')
    r.owner.send("<message to='carol@%s' id='direct1'><x xmlns='%s' jid='%s' password='pw' reason='come'/></message>"
                 % (HOST, NS_CONFERENCE, r.jid))
    m = take(carol, lambda e: is_message(e) and e.get('id') == 'direct1', 5, 'direct invitation')
    assert m.get('from') == r.owner.jid
    x = m.find(q(NS_CONFERENCE, 'x'))
    assert x is not None and x.get('jid') == r.jid and x.get('reason') == 'come' and x.get('password') == 'pw', tostr(m)


# ---- XEP-0410, XEP-0421 ---------------------------------------------------------------------------

NS_SELF_PING_OPT = NS_MUC + '#self-ping-optimization'


def self_ping(c, occupant, answer=True, timeout=10.0):
    """XEP-0410 self-ping from c to its occupant JID.  Without the server
    optimization the room forwards the ping to one of the user's joined
    clients; c (and only c) answers such a forwarded ping, as a client
    would.  Returns (the final answer, the pings forwarded to c)."""
    iq_id = unique('sp')
    c.send("<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>" % (iq_id, occupant, NS_PING))
    forwarded = []
    deadline = time.monotonic() + timeout
    while True:
        e = take(c, lambda e: e.tag == q(NS_CLIENT, 'iq') and (
            (e.get('id') == iq_id and e.get('type') in ('result', 'error')) or
            (e.get('type') == 'get' and e.find(q(NS_PING, 'ping')) is not None)),
            max(0.1, deadline - time.monotonic()), 'answer to self-ping %s' % iq_id)
        if e.get('id') == iq_id and e.get('type') in ('result', 'error'):
            return e, forwarded
        forwarded.append(e)
        if answer:
            c.send("<iq type='result' id='%s' to='%s'/>" % (e.get('id'), e.get('from')))


def test_self_ping(server, rooms):
    """XEP-0410: a ping to one's own occupant JID gets a result while
    joined (answered by the room when it advertises the optimization,
    else through a client of the user), and not-acceptable once not
    joined, or from a resource that is not in the room."""
    r = rooms()
    carol = r.enter('carol')
    optimized = NS_SELF_PING_OPT in features(disco_info(carol, r.jid))
    res, forwarded = self_ping(carol, r.jid + '/carol')
    assert res.get('type') == 'result', tostr(res)
    assert res.get('from') == r.jid + '/carol'
    if optimized:
        assert not forwarded, 'the room advertises %s but forwarded: %s' % (
            NS_SELF_PING_OPT, [tostr(e) for e in forwarded])
    other = r.client('carol')
    res, _ = self_ping(other, r.jid + '/carol')
    assert stanza_error(res) == 'not-acceptable', tostr(res)
    leave(carol, r.jid, 'carol')
    res, _ = self_ping(carol, r.jid + '/carol')
    assert stanza_error(res) == 'not-acceptable', tostr(res)


def test_occupant_id(server, rooms):
    """XEP-0421: the room advertises urn:xmpp:occupant-id:0; presences and
    messages carry an occupant-id stable per real user (across a nick
    change and a rejoin), different between users, and a client's own
    occupant-id is replaced."""
    r = rooms()
    info = disco_info(r.owner, r.jid)
    assert NS_OCCUPANT_ID in features(info), sorted(features(info))
    carol = r.enter('carol')
    erin = r.enter('erin')
    cid = occupant_id(carol.joined.self_presence)
    assert cid, 'no occupant-id in the self-presence: %s' % tostr(carol.joined.self_presence)
    bobs = [p for p in carol.joined.occupants if resource(p.get('from')) == 'bob']
    assert bobs and occupant_id(bobs[0]) and occupant_id(bobs[0]) != cid, tostr(bobs[0] if bobs else None)
    assert occupant_id(erin.joined.self_presence) not in (None, cid)
    body = unique('idd-')
    say(carol, r.jid, body, extra="<occupant-id xmlns='%s' id='forged'/>" % NS_OCCUPANT_ID)
    m = heard(erin, r.jid, body)
    assert occupant_id(m) == cid, tostr(m)
    assert len(cid) <= 128 and 'carol' not in cid, cid
    # history carries it too (XEP-0421 §4)
    late = r.client('alice')
    j = joined(late, r.jid, 'late')
    hist = [h for h in j.history if h.findtext(q(NS_CLIENT, 'body')) == body]
    assert hist and occupant_id(hist[0]) == cid, [tostr(h) for h in j.history]
    carol.send("<presence to='%s/carol2'/>" % r.jid)
    p = take(erin, lambda e: is_presence(e, frm=r.jid + '/carol2'), 5, 'new nick')
    assert occupant_id(p) == cid, tostr(p)
    leave(carol, r.jid, 'carol2')
    again = r.client('carol')
    j = joined(again, r.jid, 'carol3')
    assert occupant_id(j.self_presence) == cid, 'another session of the same user: %s' % tostr(j.self_presence)


# ---- several resources under one nick ------------------------------------------------------------

def test_join_right_after_initial_presence_keeps_its_order(server, rooms):
    """§7.2: the occupants' presence, the self-presence, then the subject,
    also when the join comes in the same write as the client's initial
    presence, while the server is still busy with that presence's roster
    work (the room's presence must not wait behind it and so come after
    the subject)."""
    r = rooms()
    r.enter('carol')
    c = RawClient(server.port)
    c.login('erin', server.password('erin'), resource=unique('muc-'), presence=False)
    r.clients.append(c)
    c.send('<presence/>' + join_stanza(r.jid, 'erin'))
    j = join_answer(c, r.jid)
    assert j.self_presence is not None and j.subject is not None, j.order
    assert j.order == ['presence', 'presence', 'self', 'subject'], j.order


def test_multiple_resources_one_nick(server, rooms):
    """§7.2.? (multi-session nicks): two resources of one user share a nick;
    both get the room's traffic; one leaving leaves the other in."""
    r = rooms()
    c1 = r.enter('carol', 'carol')
    c2 = r.client('carol')
    j = joined(c2, r.jid, 'carol')
    assert 110 in j.codes
    body = unique('to-both-')
    say(r.owner, r.jid, body)
    heard(c1, r.jid, body)
    heard(c2, r.jid, body)
    # messages from either resource come from the one occupant JID
    body2 = unique('from-second-')
    say(c2, r.jid, body2)
    assert heard(r.owner, r.jid, body2).get('from') == r.jid + '/carol'
    # a different user still cannot take the nick
    erin = r.client('erin')
    assert join_error(erin, r.jid, 'carol') == 'conflict'
    # the first resource leaves; the second is still in
    c1.send("<presence to='%s/carol' type='unavailable'/>" % r.jid)
    time.sleep(0.5)
    body3 = unique('still-there-')
    say(r.owner, r.jid, body3)
    heard(c2, r.jid, body3)
    res, _ = self_ping(c2, r.jid + '/carol')
    assert res.get('type') == 'result', tostr(res)
    gone = [p for p in take_all(r.owner, lambda e: is_presence(e, frm=r.jid + '/carol', typ='unavailable'), 0.3)]
    assert not gone, 'the occupant left for the others while a resource remains: %s' % [tostr(p) for p in gone]


def is_iq(e, typ=None, iq_id=None):
    return (e.tag == q(NS_CLIENT, 'iq') and (typ is None or e.get('type') in typ)
            and (iq_id is None or e.get('id') == iq_id))


def test_iq_between_occupants(server, rooms):
    """§7.2 (iqs between occupants), RFC 6120 §8.2.3: a request to an
    occupant JID reaches that occupant from the asker's occupant JID,
    without the asker's real JID; its result or error comes back, with the
    asker's id, to the resource that asked, also when the asker has two
    resources under one nick; an answer that matches no request goes
    nowhere."""
    r = rooms()
    laptop = r.enter('carol')
    erin = r.enter('erin')

    def relayed(asker, payload, answer):
        """asker sends a get to erin's occupant JID, erin answers it with
        answer (type, payload); the id asker used."""
        iq_id = unique('rel')
        asker.send("<iq type='get' id='%s' to='%s/erin'>%s</iq>" % (iq_id, r.jid, payload))
        req = take(erin, lambda e: is_iq(e, ('get',)), 5, 'relayed request')
        assert req.get('from') == r.jid + '/carol', tostr(req)
        assert resource(asker.jid) not in tostr(req), 'the asker is revealed: %s' % tostr(req)
        erin.send("<iq type='%s' id='%s' to='%s'>%s</iq>" % (answer[0], req.get('id'), req.get('from'), answer[1]))
        return iq_id

    version = "<query xmlns='jabber:iq:version'/>"
    named = "<query xmlns='jabber:iq:version'><name>erin-client</name></query>"
    # one resource: the result comes back with the asker's id
    iq_id = relayed(laptop, version, ('result', named))
    res = take(laptop, lambda e: is_iq(e, ('result', 'error')), 5, 'answer from erin')
    assert res.get('id') == iq_id and res.get('type') == 'result', tostr(res)
    assert res.get('from') == r.jid + '/erin', tostr(res)
    assert res.findtext('{jabber:iq:version}query/{jabber:iq:version}name') == 'erin-client', tostr(res)
    # a second resource under the same nick, joined last
    phone = r.client('carol')
    joined(phone, r.jid, 'carol')
    drain(phone, 0.3)
    iq_id = relayed(laptop, version, ('result', named))
    res = take(laptop, lambda e: is_iq(e, ('result', 'error')), 5, 'answer at the asking resource')
    assert res.get('id') == iq_id and res.get('type') == 'result', tostr(res)
    nothing(phone, lambda e: is_iq(e), 0.5, 'answer to the other resource\'s request')
    # and the other way round; an error goes back the same way
    iq_id = relayed(phone, version,
                    ('error', "<error type='cancel'><service-unavailable xmlns='%s'/></error>" % NS_STANZAS))
    res = take(phone, lambda e: is_iq(e, ('result', 'error')), 5, 'error at the asking resource')
    assert res.get('id') == iq_id and stanza_error(res) == 'service-unavailable', tostr(res)
    nothing(laptop, lambda e: is_iq(e), 0.5, 'error for the other resource')
    # each request is answered once; a made-up answer reaches nobody
    erin.send("<iq type='result' id='%s' to='%s/carol'/>" % (iq_id, r.jid))
    erin.send("<iq type='result' id='%s' to='%s/carol'/>" % (unique('made-up'), r.jid))
    for c in (laptop, phone):
        nothing(c, lambda e: is_iq(e), 0.5, 'answer matching no request')


# ---- rate limit and slow readers -----------------------------------------------------------------

def test_message_flood_resource_constraint(server, rooms):
    """message_rate 5/s, message_burst 10 (the defaults): a flooder gets
    resource-constraint errors, the others get at most what the rate
    allows, and keep talking among themselves."""
    r = rooms()
    flooder = r.enter('carol')
    erin = r.enter('erin')
    sent = 60
    start = time.monotonic()
    flooder.send(''.join("<message to='%s' type='groupchat' id='fl%d'><body>flood-%d</body></message>"
                         % (r.jid, i, i) for i in range(sent)))
    errors = take_all(flooder, lambda e: is_message(e, typ='error'), 3)
    elapsed = time.monotonic() - start
    assert errors, 'no error for %d messages at once' % sent
    for e in errors:
        assert stanza_error(e) == 'resource-constraint' and error_type(e) == 'wait', tostr(e)
    got = take_all(erin, lambda e: is_message(e, frm=r.jid + '/carol'), 1)
    assert 10 <= len(got) <= 10 + 5 * (elapsed + 1) + 1, '%d of %d delivered in %.1fs' % (len(got), sent, elapsed)
    assert len(got) + len(errors) == sent, 'delivered %d + refused %d != %d' % (len(got), len(errors), sent)
    body = unique('others-fine-')
    say(r.owner, r.jid, body)
    heard(erin, r.jid, body)
    time.sleep(1.5)                     # the bucket refills
    body = unique('calm-again-')
    say(flooder, r.jid, body)
    heard(erin, r.jid, body)


@pytest.fixture(scope='module')
def special(tmp_path_factory):
    """A server with logging, no message rate, default_max_users 3,
    history_size 5, and only bob allowed to create rooms."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('muc-special'),
                             muc='{ log_dir: muclogs, message_rate: 0, default_max_users: 3, history_size: 5, '
                                 'access_create: list, create_list: ["bob@%s"] }' % HOST)
    srv.start_with_users()
    yield srv
    srv.finish()


def test_slow_reader_removed_with_333(special):
    """An occupant that stops reading is removed from the room before its
    output piles up without end; the others get its unavailable presence
    with status 333, and keep talking."""
    bob = connect(special, 'bob')
    carol = connect(special, 'carol')
    slow = connect(special, 'erin', rcvbuf=4096)
    try:
        room = create_room(bob, 'bob')
        joined(carol, room, 'carol')
        joined(slow, room, 'erin')
        big = 'w' * 30000
        deadline = time.monotonic() + 120
        gone = None
        while gone is None and time.monotonic() < deadline:
            say(bob, room, big)
            drain(bob, 0.02)
            # carol reads for longer than a message takes to come, so that
            # on a slow machine she is not the one who falls behind
            for e in take_all(carol, lambda e: is_presence(e, frm=room + '/erin', typ='unavailable'), 0.1):
                gone = e
            carol.backlog = []
        assert gone is not None, 'the slow reader was never removed'
        assert 333 in codes(gone), 'removal without status 333: %s' % tostr(gone)
        assert item_of(gone).get('role') == 'none'
        body = unique('after-slow-')
        say(carol, room, body)
        heard(bob, room, body, timeout=10)
        destroy(bob, room)
    finally:
        slow.close()
        bob.close()
        carol.close()


# ---- slixmpp -------------------------------------------------------------------------------------

def test_slixmpp_client_walkthrough(server, run):
    """A room as slixmpp's xep_0045 plugin does it: join (creating), accept
    the form, a second client joins, messages both ways, an affiliation."""
    async def go():
        bob = await parleytest.login(server, 'bob', resource=unique('sx-'))
        carol = await parleytest.login(server, 'carol', resource=unique('sx-'))
        try:
            for c in (bob, carol):
                c.register_plugin('xep_0045')
            room = new_room('slix')
            created = asyncio.get_running_loop().create_future()
            bob.add_event_handler('muc::%s::self-presence' % room,
                                  lambda p: created.done() or created.set_result(p))
            bob['xep_0045'].join_muc(room, 'bob')
            p = await asyncio.wait_for(created, 10)
            assert 201 in p['muc']['status_codes'], p
            form = await bob['xep_0045'].get_room_config(room)
            form['type'] = 'submit'
            await bob['xep_0045'].set_room_config(room, form)
            arrived = asyncio.get_running_loop().create_future()
            bob.add_event_handler('muc::%s::got_online' % room,
                                  lambda p: arrived.done() or p['muc']['nick'] != 'carol' or arrived.set_result(p))
            await carol['xep_0045'].join_muc_wait(room, 'carol', maxstanzas=0, timeout=10)
            p = await asyncio.wait_for(arrived, 10)
            assert p['muc']['role'] == 'participant', p
            got = asyncio.get_running_loop().create_future()
            bob.add_event_handler('groupchat_message',
                                  lambda m: got.done() or m['mucnick'] != 'carol' or got.set_result(m['body']))
            body = unique('slix-')
            carol.send_message(mto=room, mbody=body, mtype='groupchat')
            assert await asyncio.wait_for(got, 10) == body
            await bob['xep_0045'].set_affiliation(room, 'member', jid='carol@' + HOST)
            members = await bob['xep_0045'].get_affiliation_list(room, 'member')
            assert 'carol@' + HOST in [str(j) for j in members]
            await bob['xep_0045'].destroy(room, reason='done')
        finally:
            await parleytest.logout(bob, carol)
    run(go(), timeout=60)
