"""Bookmarks conversion (module bookmarks; XEP-0402 compatibility and
XEP-0411): the server keeps a user's legacy bookmarks (XEP-0048) in private
XML storage (XEP-0049) and in the PEP node storage:bookmarks in step with
the PEP native bookmarks (XEP-0402, one item per room in
urn:xmpp:bookmarks:1), both ways, keeping the legacy URL bookmarks.  The
conversion runs after the client's request was answered: the tests wait
for its result.  Every test registers fresh users.  Needs the pubsub module
with PEP."""
import base64
import hashlib
import time

from parleytest import HOST, NS_CLIENT, RawClient, q, tostr, unique

NS_PRIVATE = 'jabber:iq:private'
NS_LEGACY = 'storage:bookmarks'
NS_NATIVE = 'urn:xmpp:bookmarks:1'
NS_COMPAT = 'urn:xmpp:bookmarks:1#compat'
NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_DATA = 'jabber:x:data'
NS_CAPS = 'http://jabber.org/protocol/caps'
NS_PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event'


# ---- helpers ----------------------------------------------------------------

def login(server, prefix='bm'):
    user = unique(prefix)
    server.register(user, HOST, 'pw-' + user)
    c = RawClient(server.port)
    c.login(user, 'pw-' + user, resource=unique('r'))
    c.user = user
    c.bare = '%s@%s' % (user, HOST)
    return c


def eventually(fn, what, timeout=5.0):
    """fn's value once it is neither None nor False (polled), else fail
    with what.  (An element without children is false: not a test here.)"""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v is not None and v is not False:
            return v
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.1)


def account_features(c):
    """The disco#info features of c's own account."""
    r = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=c.bare)
    assert r.get('type') == 'result', tostr(r)
    return {f.get('var') for f in r.iter(q(NS_DISCO_INFO, 'feature'))}


def legacy_doc(conferences=(), urls=()):
    """A legacy <storage/>: conferences (jid, name, autojoin, nick, password)
    and urls (name, url)."""
    out = ["<storage xmlns='%s'>" % NS_LEGACY]
    for jid, name, autojoin, nick, password in conferences:
        out.append("<conference jid='%s' name='%s' autojoin='%s'>" % (jid, name, autojoin))
        if nick is not None:
            out.append('<nick>%s</nick>' % nick)
        if password is not None:
            out.append('<password>%s</password>' % password)
        out.append('</conference>')
    for name, url in urls:
        out.append("<url name='%s' url='%s'/>" % (name, url))
    out.append('</storage>')
    return ''.join(out)


def private_set(c, doc):
    r = c.iq('set', "<query xmlns='%s'>%s</query>" % (NS_PRIVATE, doc))
    assert r.get('type') == 'result', tostr(r)


def private_get(c):
    r = c.iq('get', "<query xmlns='%s'><storage xmlns='%s'/></query>" % (NS_PRIVATE, NS_LEGACY))
    assert r.get('type') == 'result', tostr(r)
    st = r.find('%s/%s' % (q(NS_PRIVATE, 'query'), q(NS_LEGACY, 'storage')))
    assert st is not None, tostr(r)
    return st


def publish_options(fields):
    out = ["<publish-options><x xmlns='%s' type='submit'>"
           "<field var='FORM_TYPE' type='hidden'>"
           "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>" % NS_DATA]
    for var, value in fields:
        out.append("<field var='%s'><value>%s</value></field>" % (var, value))
    out.append('</x></publish-options>')
    return ''.join(out)


NATIVE_OPTIONS = publish_options([('pubsub#persist_items', 'true'),
                                  ('pubsub#max_items', 'max'),
                                  ('pubsub#send_last_published_item', 'never'),
                                  ('pubsub#access_model', 'whitelist')])
LEGACY_OPTIONS = publish_options([('pubsub#persist_items', 'true'),
                                  ('pubsub#access_model', 'whitelist')])


def publish(c, node, item_id, payload, options=''):
    r = c.iq('set', "<pubsub xmlns='%s'><publish node='%s'><item id='%s'>%s</item></publish>%s"
             "</pubsub>" % (NS_PUBSUB, node, item_id, payload, options))
    assert r.get('type') == 'result', tostr(r)


def retract(c, node, item_id):
    r = c.iq('set', "<pubsub xmlns='%s'><retract node='%s' notify='true'><item id='%s'/></retract>"
             "</pubsub>" % (NS_PUBSUB, node, item_id))
    assert r.get('type') == 'result', tostr(r)


def items(c, node):
    """{item id: payload} of c's own PEP node ({} when it does not exist)."""
    r = c.iq('get', "<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PUBSUB, node), to=c.bare)
    if r.get('type') == 'error':
        return {}
    assert r.get('type') == 'result', tostr(r)
    out = {}
    for it in r.iter(q(NS_PUBSUB, 'item')):
        out[it.get('id')] = it[0] if len(it) else None
    return out


def conferences(storage):
    """{jid: (name, autojoin, nick, password)} of a legacy document."""
    out = {}
    for c in storage.findall(q(NS_LEGACY, 'conference')):
        out[c.get('jid')] = (c.get('name'), c.get('autojoin') in ('true', '1'),
                             c.findtext(q(NS_LEGACY, 'nick')), c.findtext(q(NS_LEGACY, 'password')))
    return out


def native(payload):
    """(name, autojoin, nick, password) of an XEP-0402 <conference/>."""
    assert payload.tag == q(NS_NATIVE, 'conference'), tostr(payload)
    return (payload.get('name'), payload.get('autojoin') in ('true', '1'),
            payload.findtext(q(NS_NATIVE, 'nick')), payload.findtext(q(NS_NATIVE, 'password')))


def legacy_with(c, rooms):
    """The legacy PEP document when its conferences are exactly rooms."""
    doc = items(c, NS_LEGACY).get('current')
    return doc if doc is not None and set(conferences(doc)) == rooms else None


def urls(storage):
    return sorted((u.get('name'), u.get('url')) for u in storage.findall(q(NS_LEGACY, 'url')))


ROOM1 = 'council@conference.example.org'
ROOM2 = 'orchard@conference.example.org'
ROOM3 = 'garden@conference.example.org'


# ---- tests ------------------------------------------------------------------

def test_compat_feature(server):
    c = login(server)
    try:
        feats = account_features(c)
        # XEP-0402 (private XML, legacy PEP) and XEP-0411
        for f in (NS_COMPAT, NS_COMPAT + '-pep', 'urn:xmpp:bookmarks-conversion:0'):
            assert f in feats, f
    finally:
        c.close()


def test_private_xml_to_native_and_legacy_pep(server):
    c = login(server)
    try:
        private_set(c, legacy_doc([(ROOM1, 'Council', 'true', 'Puck', 'titania'),
                                   (ROOM2, 'Orchard', 'false', None, None)],
                                  [('Oberon', 'https://example.org/oberon')]))
        got = eventually(lambda: (items(c, NS_NATIVE) if len(items(c, NS_NATIVE)) == 2 else None),
                         'two native bookmarks')
        assert native(got[ROOM1]) == ('Council', True, 'Puck', 'titania')
        assert native(got[ROOM2]) == ('Orchard', False, None, None)
        # XEP-0411: the legacy PEP node holds the same document
        legacy = eventually(lambda: items(c, NS_LEGACY).get('current'), 'the legacy PEP item')
        assert conferences(legacy) == {ROOM1: ('Council', True, 'Puck', 'titania'),
                                       ROOM2: ('Orchard', False, None, None)}
        assert urls(legacy) == [('Oberon', 'https://example.org/oberon')]

        # a room gone from the legacy document is retracted, a changed one republished
        private_set(c, legacy_doc([(ROOM2, 'Orchard', 'true', 'Romeo', None)]))

        def settled():
            i = items(c, NS_NATIVE)
            return i if set(i) == {ROOM2} and native(i[ROOM2])[1] else None
        got = eventually(settled, 'the room retracted and the other changed')
        assert native(got[ROOM2]) == ('Orchard', True, 'Romeo', None)
    finally:
        c.close()


def test_native_to_private_xml_keeps_urls(server):
    c = login(server)
    try:
        private_set(c, legacy_doc([(ROOM1, 'Council', 'false', None, None)],
                                  [('Docs', 'https://example.org/docs')]))
        eventually(lambda: ROOM1 in items(c, NS_NATIVE), 'the native bookmark')
        publish(c, NS_NATIVE, ROOM3,
                "<conference xmlns='%s' name='Garden' autojoin='true'><nick>Juliet</nick>"
                "</conference>" % NS_NATIVE, NATIVE_OPTIONS)

        def has_room3():
            st = private_get(c)
            return st if ROOM3 in conferences(st) else None
        st = eventually(has_room3, 'the published room in private XML')
        assert conferences(st) == {ROOM1: ('Council', False, None, None),
                                   ROOM3: ('Garden', True, 'Juliet', None)}
        assert urls(st) == [('Docs', 'https://example.org/docs')]
        legacy = eventually(lambda: legacy_with(c, {ROOM1, ROOM3}),
                            'the published room in the legacy PEP node')
        assert urls(legacy) == [('Docs', 'https://example.org/docs')]

        # a retract removes the room from both legacy places
        retract(c, NS_NATIVE, ROOM1)

        def without_room1():
            st = private_get(c)
            return st if ROOM1 not in conferences(st) else None
        st = eventually(without_room1, 'the retracted room gone from private XML')
        assert set(conferences(st)) == {ROOM3}
        assert urls(st) == [('Docs', 'https://example.org/docs')]
        eventually(lambda: legacy_with(c, {ROOM3}), 'the retracted room gone from the legacy PEP node')
    finally:
        c.close()


def test_legacy_pep_to_private_xml_and_native(server):
    c = login(server)
    try:
        publish(c, NS_LEGACY, 'current',
                legacy_doc([(ROOM2, 'Orchard', '1', 'Benvolio', None)],
                           [('Verona', 'https://example.org/verona')]), LEGACY_OPTIONS)

        def in_private():
            st = private_get(c)
            return st if ROOM2 in conferences(st) else None
        st = eventually(in_private, 'the legacy PEP bookmarks in private XML')
        assert conferences(st) == {ROOM2: ('Orchard', True, 'Benvolio', None)}
        assert urls(st) == [('Verona', 'https://example.org/verona')]
        got = eventually(lambda: items(c, NS_NATIVE).get(ROOM2), 'the native bookmark')
        assert native(got) == ('Orchard', True, 'Benvolio', None)
    finally:
        c.close()


def notify_client(server, user, node):
    """Another resource of user, available with verified caps (XEP-0115)
    that hold node+notify: it answers the server's disco#info of its ver."""
    features = sorted([NS_DISCO_INFO, node + '+notify'])
    identity = 'client/pc//bookmarks test'
    ver = base64.b64encode(hashlib.sha1(
        (identity + '<' + ''.join(f + '<' for f in features)).encode()).digest()).decode()
    caps_node = 'https://parley.example/tests'
    c = RawClient(server.port)
    c.login(user, 'pw-' + user, resource=unique('r'), presence=False)
    c.send("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>"
           % (NS_CAPS, caps_node, ver))

    def caps_query(e):
        qe = e.find(q(NS_DISCO_INFO, 'query'))
        return (e.tag == q(NS_CLIENT, 'iq') and e.get('type') == 'get' and qe is not None
                and qe.get('node') == '%s#%s' % (caps_node, ver))
    iq = c.wait_for(caps_query, timeout=5, what='the disco#info of the caps ver')
    c.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s#%s'>"
           "<identity category='client' type='pc' name='bookmarks test'/>%s</query></iq>"
           % (iq.get('id'), iq.get('from'), NS_DISCO_INFO, caps_node, ver,
              ''.join("<feature var='%s'/>" % f for f in features)))
    return c


def test_native_publish_notifies(server):
    """The items the server publishes are notified like a client's
    (XEP-0402): the owner's resource with urn:xmpp:bookmarks:1+notify
    in its caps gets them."""
    c = login(server)
    c2 = notify_client(server, c.user, NS_NATIVE)
    try:
        time.sleep(0.3)  # the caps answer is verified
        private_set(c, legacy_doc([(ROOM1, 'Council', 'true', None, None)]))

        def event(e):
            if e.tag != q(NS_CLIENT, 'message'):
                return False
            its = e.find('%s/%s' % (q(NS_PUBSUB_EVENT, 'event'), q(NS_PUBSUB_EVENT, 'items')))
            return its is not None and its.get('node') == NS_NATIVE
        m = c2.wait_for(event, timeout=5, what='a native bookmarks notification')
        item = m.find('%s/%s/%s' % (q(NS_PUBSUB_EVENT, 'event'), q(NS_PUBSUB_EVENT, 'items'),
                                    q(NS_PUBSUB_EVENT, 'item')))
        assert item is not None and item.get('id') == ROOM1, tostr(m)
    finally:
        c2.close()
        c.close()
