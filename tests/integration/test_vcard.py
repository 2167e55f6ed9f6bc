"""vCards (vcard-temp, XEP-0054): a user sets their own vCard, anyone gets a
local user's vCard from the server, an absent vCard is empty, the size is
bounded, nobody sets someone else's, and the vCard outlives the session and
dies with the account."""

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, NS_DISCO_INFO, RawClient, q, stanza_error, tostr, unique

NS_VCARD = 'vcard-temp'


# ---- helpers ----------------------------------------------------------------

def new_user(srv, prefix='vc'):
    user, pw = unique(prefix), 'vcard-pw'
    srv.register(user, HOST, pw)
    return user, pw


def connect(srv, user, pw):
    c = RawClient(srv.port)
    c.login(user, pw, resource=unique('r-'))
    return c


def vcard_xml(fn, extra=''):
    return "<vCard xmlns='%s'><FN>%s</FN>%s</vCard>" % (NS_VCARD, fn, extra)


def get_vcard(c, to=None):
    el = c.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to=to)
    assert el.get('type') == 'result', tostr(el)
    v = el.find(q(NS_VCARD, 'vCard'))
    assert v is not None, tostr(el)
    return v




@pytest.fixture(scope='module')
def small_server(tmp_path_factory):
    """A parleyd whose vCards are at most 2 KiB."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-vcard-small'))
    text = srv.config.read_text()
    marker = 'modules:\n  disco: {}\n'
    assert marker in text
    srv.config.write_text(text.replace(marker, marker + '  vcard: { max_size: 2K }\n', 1))
    srv.start()
    yield srv
    srv.finish()


# ---- tests ------------------------------------------------------------------

def test_advertised_on_server_and_user(server):
    user, pw = new_user(server)
    c = connect(server, user, pw)
    try:
        for to in (HOST, '%s@%s' % (user, HOST)):
            el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
            assert el.get('type') == 'result', tostr(el)
            features = [f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))]
            assert NS_VCARD in features, (to, tostr(el))
    finally:
        c.close()


def test_set_and_get_own(server):
    user, pw = new_user(server)
    c = connect(server, user, pw)
    try:
        # none yet: an empty vCard (XEP-0054 3.1)
        v = get_vcard(c)
        assert len(v) == 0, tostr(v)
        el = c.iq('set', vcard_xml('Juliet Capulet', '<NICKNAME>jc</NICKNAME>'))
        assert el.get('type') == 'result', tostr(el)
        v = get_vcard(c)
        assert v.findtext(q(NS_VCARD, 'FN')) == 'Juliet Capulet', tostr(v)
        assert v.findtext(q(NS_VCARD, 'NICKNAME')) == 'jc', tostr(v)
        # addressed to the own bare JID: the same vCard, and a set there works too
        v = get_vcard(c, to='%s@%s' % (user, HOST))
        assert v.findtext(q(NS_VCARD, 'FN')) == 'Juliet Capulet', tostr(v)
        el = c.iq('set', vcard_xml('J. C.'), to='%s@%s' % (user, HOST))
        assert el.get('type') == 'result', tostr(el)
        v = get_vcard(c)
        assert v.findtext(q(NS_VCARD, 'FN')) == 'J. C.', tostr(v)
        assert v.find(q(NS_VCARD, 'NICKNAME')) is None, tostr(v)   # replaced, not merged
    finally:
        c.close()


def test_get_another_users_vcard(server):
    owner, opw = new_user(server, 'own')
    reader, rpw = new_user(server, 'rdr')
    o = connect(server, owner, opw)
    r = connect(server, reader, rpw)
    try:
        fn = unique('Romeo ')
        el = o.iq('set', vcard_xml(fn))
        assert el.get('type') == 'result', tostr(el)
        # the server answers for the owner, from the owner's bare JID
        el = r.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to='%s@%s' % (owner, HOST))
        assert el.get('type') == 'result', tostr(el)
        assert el.get('from') == '%s@%s' % (owner, HOST), tostr(el)
        assert el.find(q(NS_VCARD, 'vCard')).findtext(q(NS_VCARD, 'FN')) == fn, tostr(el)
        # and while the owner is offline too
        o.close()
        v = get_vcard(r, to='%s@%s' % (owner, HOST))
        assert v.findtext(q(NS_VCARD, 'FN')) == fn, tostr(v)
        # someone who never set one: empty
        v = get_vcard(r, to='bob@%s' % HOST)
        assert len(v) == 0, tostr(v)
    finally:
        o.close()
        r.close()


def test_absent_vcard_is_empty(server):
    user, pw = new_user(server, 'abs')
    other, _ = new_user(server, 'none')
    c = connect(server, user, pw)
    try:
        el = c.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to='%s@%s' % (other, HOST))
        assert el.get('type') == 'result', tostr(el)
        v = el.find(q(NS_VCARD, 'vCard'))
        assert v is not None and len(v) == 0, tostr(el)
    finally:
        c.close()


def test_set_someone_elses_is_forbidden(server):
    user, pw = new_user(server, 'me')
    victim, vpw = new_user(server, 'vic')
    c = connect(server, user, pw)
    v = connect(server, victim, vpw)
    try:
        assert v.iq('set', vcard_xml('The Victim')).get('type') == 'result'
        el = c.iq('set', vcard_xml('Impostor'), to='%s@%s' % (victim, HOST))
        assert stanza_error(el) == 'forbidden', tostr(el)
        got = get_vcard(c, to='%s@%s' % (victim, HOST))
        assert got.findtext(q(NS_VCARD, 'FN')) == 'The Victim', tostr(got)
    finally:
        c.close()
        v.close()


def test_size_limit(small_server):
    srv = small_server
    user, pw = new_user(srv, 'big')
    c = connect(srv, user, pw)
    try:
        assert c.iq('set', vcard_xml('small')).get('type') == 'result'
        el = c.iq('set', vcard_xml('x' * 3000))
        assert stanza_error(el) == 'not-acceptable', tostr(el)
        text = el.find(q(NS_CLIENT, 'error')).findtext(q(parleytest.NS_STANZA_ERR, 'text'))
        assert text and '2048' in text, tostr(el)
        # the old one is kept
        v = get_vcard(c)
        assert v.findtext(q(NS_VCARD, 'FN')) == 'small', tostr(v)
        # just under the limit is fine
        el = c.iq('set', vcard_xml('y' * 1900))
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()


def test_bad_payload(server):
    user, pw = new_user(server, 'bad')
    c = connect(server, user, pw)
    try:
        el = c.iq('set', "<vcard xmlns='%s'/>" % NS_VCARD)
        assert el.get('type') == 'error', tostr(el)
    finally:
        c.close()


def test_survives_relogin(server):
    user, pw = new_user(server, 're')
    c = connect(server, user, pw)
    try:
        assert c.iq('set', vcard_xml('Persistent')).get('type') == 'result'
    finally:
        c.close()
    c = connect(server, user, pw)
    try:
        v = get_vcard(c)
        assert v.findtext(q(NS_VCARD, 'FN')) == 'Persistent', tostr(v)
    finally:
        c.close()


def test_unregister_removes_vcard(server):
    user, pw = new_user(server, 'unreg')
    c = connect(server, user, pw)
    try:
        assert c.iq('set', vcard_xml('Soon gone')).get('type') == 'result'
    finally:
        c.close()
    assert server.db_rows('vcards', user) == 1
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert server.db_rows('vcards', user) == 0
    server.register(user, HOST, pw)
    c = connect(server, user, pw)
    try:
        v = get_vcard(c)
        assert len(v) == 0, tostr(v)
    finally:
        c.close()
