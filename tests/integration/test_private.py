"""Private XML storage (XEP-0049, jabber:iq:private): a user stores elements
per namespace and reads them back; several in one set; reserved namespaces
refused; nobody else reads or writes them; the size is bounded; the data
dies with the account."""

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, q, stanza_error, tostr, unique

NS_PRIVATE = 'jabber:iq:private'
NS_BOOKMARKS = 'storage:bookmarks'
NS_PREFS = 'urn:example:prefs'


# ---- helpers ----------------------------------------------------------------

def new_user(srv, prefix='pv'):
    user, pw = unique(prefix), 'private-pw'
    srv.register(user, HOST, pw)
    return user, pw


def connect(srv, user, pw):
    c = RawClient(srv.port)
    c.login(user, pw, resource=unique('r-'))
    return c


def query(inner):
    return "<query xmlns='%s'>%s</query>" % (NS_PRIVATE, inner)


def get(c, name, ns, to=None):
    """The element the server returns for name/ns (asserting a result)."""
    el = c.iq('get', query("<%s xmlns='%s'/>" % (name, ns)), to=to)
    assert el.get('type') == 'result', tostr(el)
    qe = el.find(q(NS_PRIVATE, 'query'))
    assert qe is not None and len(qe) == 1, tostr(el)
    assert qe[0].tag == q(ns, name), tostr(el)
    return qe[0]




@pytest.fixture(scope='module')
def small_server(tmp_path_factory):
    """A parleyd that stores at most 1 KiB per private set."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-private-small'))
    text = srv.config.read_text()
    marker = 'modules:\n  disco: {}\n'
    assert marker in text
    srv.config.write_text(text.replace(marker, marker + '  private: { max_size: 1K }\n', 1))
    srv.start()
    yield srv
    srv.finish()


# ---- tests ------------------------------------------------------------------

def test_set_and_get(server):
    user, pw = new_user(server)
    c = connect(server, user, pw)
    try:
        # nothing stored: the element asked for, empty
        e = get(c, 'storage', NS_BOOKMARKS)
        assert len(e) == 0 and not e.attrib, tostr(e)
        el = c.iq('set', query("<storage xmlns='%s'><conference jid='room@muc.example' "
                               "autojoin='true' name='Room'><nick>jc</nick></conference>"
                               "</storage>" % NS_BOOKMARKS))
        assert el.get('type') == 'result', tostr(el)
        e = get(c, 'storage', NS_BOOKMARKS)
        conf = e.find(q(NS_BOOKMARKS, 'conference'))
        assert conf is not None and conf.get('jid') == 'room@muc.example', tostr(e)
        assert conf.findtext(q(NS_BOOKMARKS, 'nick')) == 'jc', tostr(e)
        # to the own bare JID works the same
        e = get(c, 'storage', NS_BOOKMARKS, to='%s@%s' % (user, HOST))
        assert e.find(q(NS_BOOKMARKS, 'conference')) is not None, tostr(e)
        # replaced, not merged
        el = c.iq('set', query("<storage xmlns='%s'/>" % NS_BOOKMARKS))
        assert el.get('type') == 'result', tostr(el)
        e = get(c, 'storage', NS_BOOKMARKS)
        assert len(e) == 0, tostr(e)
    finally:
        c.close()


def test_several_namespaces(server):
    user, pw = new_user(server, 'multi')
    c = connect(server, user, pw)
    try:
        el = c.iq('set', query("<storage xmlns='%s'><url name='a' url='http://a.example/'/>"
                               "</storage><prefs xmlns='%s'>dark</prefs>"
                               % (NS_BOOKMARKS, NS_PREFS)))
        assert el.get('type') == 'result', tostr(el)
        e = get(c, 'storage', NS_BOOKMARKS)
        assert e.find(q(NS_BOOKMARKS, 'url')).get('name') == 'a', tostr(e)
        e = get(c, 'prefs', NS_PREFS)
        assert e.text == 'dark', tostr(e)
        # a set of one leaves the other
        assert c.iq('set', query("<prefs xmlns='%s'>light</prefs>" % NS_PREFS)) \
            .get('type') == 'result'
        assert get(c, 'prefs', NS_PREFS).text == 'light'
        assert get(c, 'storage', NS_BOOKMARKS).find(q(NS_BOOKMARKS, 'url')) is not None
        # a get asks for one namespace only
        el = c.iq('get', query("<storage xmlns='%s'/><prefs xmlns='%s'/>"
                               % (NS_BOOKMARKS, NS_PREFS)))
        assert stanza_error(el) == 'bad-request', tostr(el)
        # two elements of one namespace in a set: refused, nothing changes
        el = c.iq('set', query("<prefs xmlns='%s'>a</prefs><prefs xmlns='%s'>b</prefs>"
                               % (NS_PREFS, NS_PREFS)))
        assert stanza_error(el) == 'bad-request', tostr(el)
        assert get(c, 'prefs', NS_PREFS).text == 'light'
    finally:
        c.close()


@pytest.mark.parametrize('ns', ['jabber:client', 'jabber:server', NS_PRIVATE])
def test_forbidden_namespaces(server, ns):
    user, pw = new_user(server, 'ns')
    c = connect(server, user, pw)
    try:
        el = c.iq('set', query("<data xmlns='%s'>x</data>" % ns))
        assert stanza_error(el) == 'not-acceptable', tostr(el)
        el = c.iq('get', query("<data xmlns='%s'/>" % ns))
        assert stanza_error(el) == 'not-acceptable', tostr(el)
        # a refused element in a set refuses the whole set
        el = c.iq('set', query("<prefs xmlns='%s'>x</prefs><data xmlns='%s'/>" % (NS_PREFS, ns)))
        assert stanza_error(el) == 'not-acceptable', tostr(el)
        assert len(get(c, 'prefs', NS_PREFS)) == 0
        assert get(c, 'prefs', NS_PREFS).text is None
    finally:
        c.close()
    assert server.db_rows('private_storage', user) == 0


def test_empty_query_refused(server):
    user, pw = new_user(server, 'empty')
    c = connect(server, user, pw)
    try:
        el = c.iq('set', query(''))
        assert stanza_error(el) == 'not-acceptable', tostr(el)
    finally:
        c.close()


def test_other_user_forbidden(server):
    owner, opw = new_user(server, 'own')
    other, xpw = new_user(server, 'oth')
    o = connect(server, owner, opw)
    x = connect(server, other, xpw)
    try:
        assert o.iq('set', query("<prefs xmlns='%s'>secret</prefs>" % NS_PREFS)) \
            .get('type') == 'result'
        el = x.iq('get', query("<prefs xmlns='%s'/>" % NS_PREFS), to='%s@%s' % (owner, HOST))
        assert stanza_error(el) == 'forbidden', tostr(el)
        assert 'secret' not in tostr(el)
        el = x.iq('set', query("<prefs xmlns='%s'>mine</prefs>" % NS_PREFS),
                  to='%s@%s' % (owner, HOST))
        assert stanza_error(el) == 'forbidden', tostr(el)
        assert get(o, 'prefs', NS_PREFS).text == 'secret'
        # and the other user's own space is untouched by the owner's data
        assert get(x, 'prefs', NS_PREFS).text is None
    finally:
        o.close()
        x.close()


def test_size_limit(small_server):
    srv = small_server
    user, pw = new_user(srv, 'big')
    c = connect(srv, user, pw)
    try:
        el = c.iq('set', query("<prefs xmlns='%s'>%s</prefs>" % (NS_PREFS, 'x' * 1200)))
        assert stanza_error(el) == 'not-acceptable', tostr(el)
        text = el.find(q(NS_CLIENT, 'error')).findtext(q(parleytest.NS_STANZA_ERR, 'text'))
        assert text and '1024' in text, tostr(el)
        assert get(c, 'prefs', NS_PREFS).text is None
        el = c.iq('set', query("<prefs xmlns='%s'>%s</prefs>" % (NS_PREFS, 'y' * 900)))
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()


def test_unregister_removes_private_data(server):
    user, pw = new_user(server, 'unreg')
    c = connect(server, user, pw)
    try:
        assert c.iq('set', query("<prefs xmlns='%s'>kept</prefs>" % NS_PREFS)) \
            .get('type') == 'result'
    finally:
        c.close()
    assert server.db_rows('private_storage', user) == 1
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert server.db_rows('private_storage', user) == 0
    server.register(user, HOST, pw)
    c = connect(server, user, pw)
    try:
        assert get(c, 'prefs', NS_PREFS).text is None
    finally:
        c.close()
