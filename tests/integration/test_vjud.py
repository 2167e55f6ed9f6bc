"""User directory (XEP-0055, jabber:iq:search on the host JID): the search
form, searches by name and by email with the legacy fields and with a data
form (XEP-0004, also by city and organisation), '*' prefixes, case, the
result limit, the opt-in rule (search_all: false finds only vCards with
<CLASS><PUBLIC/></CLASS>), a changed vCard, and who may search.

test.local runs the directory with max_results 3; other.local with
search_all false.  The clients are slixmpp clients."""
import pytest

import parleytest
from parleytest import HOST, OTHER, login, logout, iq, unique

NS_SEARCH = 'jabber:iq:search'
NS_DATA = 'jabber:x:data'
NS_VCARD = 'vcard-temp'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'


def s(tag):
    return '{%s}%s' % (NS_SEARCH, tag)


def d(tag):
    return '{%s}%s' % (NS_DATA, tag)


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-vjud'))
    srv.enable_module('vjud', '{ max_results: 3 }')
    text = srv.config.read_text()
    text = text.replace('  %s: {}\n' % OTHER,
                        '  %s:\n    modules:\n      vjud: { search_all: false }\n' % OTHER, 1)
    srv.config.write_text(text)
    srv.start_with_users()
    yield srv
    srv.finish()


def vcard(fn=None, given=None, family=None, nick=None, email=None, city=None, org=None,
          public=False):
    parts = ["<vCard xmlns='%s'>" % NS_VCARD]
    if fn:
        parts.append('<FN>%s</FN>' % fn)
    if given or family:
        parts.append('<N><FAMILY>%s</FAMILY><GIVEN>%s</GIVEN></N>' % (family or '', given or ''))
    if nick:
        parts.append('<NICKNAME>%s</NICKNAME>' % nick)
    if email:
        parts.append('<EMAIL><INTERNET/><USERID>%s</USERID></EMAIL>' % email)
    if city:
        parts.append('<ADR><WORK/><LOCALITY>%s</LOCALITY></ADR>' % city)
    if org:
        parts.append('<ORG><ORGNAME>%s</ORGNAME></ORG>' % org)
    if public:
        parts.append('<CLASS><PUBLIC/></CLASS>')
    parts.append('</vCard>')
    return ''.join(parts)


async def publish(srv, user, card, host=HOST):
    c = await login(srv, user, host)
    r = await iq(c, 'set', None, card)
    assert r.get('type') == 'result', parleytest.tostr(r)
    await logout(c)


async def legacy(c, host=HOST, **fields):
    payload = "<query xmlns='%s'>%s</query>" % (
        NS_SEARCH, ''.join('<%s>%s</%s>' % (k, v, k) for k, v in fields.items()))
    return await iq(c, 'set', host, payload)


async def form(c, host=HOST, **fields):
    fs = ''.join("<field var='%s'><value>%s</value></field>" % (k, v) for k, v in fields.items())
    payload = ("<query xmlns='%s'><x xmlns='%s' type='submit'><field var='FORM_TYPE' "
               "type='hidden'><value>%s</value></field>%s</x></query>" % (NS_SEARCH, NS_DATA,
                                                                        NS_SEARCH, fs))
    return await iq(c, 'set', host, payload)


def legacy_items(r):
    assert r.get('type') == 'result', parleytest.tostr(r)
    out = {}
    for it in r.find(s('query')).findall(s('item')):
        out[it.get('jid')] = {k: (it.findtext(s(k)) or '') for k in ('first', 'last', 'nick', 'email')}
    return out


def form_items(r):
    assert r.get('type') == 'result', parleytest.tostr(r)
    x = r.find('%s/%s' % (s('query'), d('x')))
    assert x is not None and x.get('type') == 'result', parleytest.tostr(r)
    out = {}
    for it in x.findall(d('item')):
        vals = {f.get('var'): f.findtext(d('value')) or '' for f in it.findall(d('field'))}
        out[vals['jid']] = vals
    return out, x


def error_of(r):
    assert r.get('type') == 'error', parleytest.tostr(r)
    e = r.find('{jabber:client}error')
    return [parleytest.local(c.tag) for c in e if c.tag.startswith('{%s}' % NS_STANZAS)][0]


_people = {}


@pytest.fixture
def people(server, run):
    """Four users of test.local with vCards, a common family name and a
    common prefix (made once per server); returns their names."""
    if _people.get('server') is server:
        return _people['names']
    tag = unique('z')          # a family name no other test uses
    names = {k: unique(k) for k in ('ann', 'bob', 'cid', 'dee')}
    for n in names.values():
        server.register(n, HOST, 'pw-' + n)
    cards = {
        'ann': vcard('Ann Smith', 'Ann', tag, 'annie', 'Ann.Smith@Example.org', 'Lyon', 'Acme'),
        'bob': vcard('Bob Smith', 'Bob', tag, 'bobby', 'bob@example.org', 'Paris', 'Acme'),
        'cid': vcard('Cid Smith', 'Cid', tag, 'cid', 'cid@example.net', 'Lyon', 'Initech'),
        'dee': vcard('Dee Smith', 'Dee', tag, 'dee', 'dee@example.net', 'Lyon', 'Initech'),
    }

    async def publish_all():
        for k, n in names.items():
            await publish(server, n, cards[k])
    run(publish_all(), timeout=60)
    names['family'] = tag
    _people['server'] = server
    _people['names'] = names
    return names


def test_disco_and_form(server, run):
    async def scenario():
        c = await login(server, 'alice')
        r = await iq(c, 'get', HOST, "<query xmlns='%s'/>" % NS_DISCO_INFO)
        q = r.find('{%s}query' % NS_DISCO_INFO)
        feats = {f.get('var') for f in q.findall('{%s}feature' % NS_DISCO_INFO)}
        ids = {(i.get('category'), i.get('type')) for i in q.findall('{%s}identity' % NS_DISCO_INFO)}
        assert NS_SEARCH in feats and ('directory', 'user') in ids, parleytest.tostr(r)
        r = await iq(c, 'get', HOST, "<query xmlns='%s'/>" % NS_SEARCH)
        assert r.get('type') == 'result', parleytest.tostr(r)
        query = r.find(s('query'))
        for k in ('first', 'last', 'nick', 'email', 'instructions'):
            assert query.find(s(k)) is not None, parleytest.tostr(r)
        x = query.find(d('x'))
        assert x.get('type') == 'form'
        assert {f.get('var') for f in x.findall(d('field'))} >= {
            'FORM_TYPE', 'user', 'fn', 'first', 'last', 'nick', 'email', 'locality', 'orgname'}
        await logout(c)
    run(scenario())


def test_legacy_search_by_name_and_email(server, people, run):
    async def scenario():
        c = await login(server, 'alice')
        got = legacy_items(await legacy(c, first='CID', last=people['family']))
        assert got == {people['cid'] + '@' + HOST: {'first': 'Cid', 'last': people['family'],
                                                   'nick': 'cid', 'email': 'cid@example.net'}}, got
        # email, case-insensitive, whole field
        got = legacy_items(await legacy(c, email='ann.smith@example.ORG'))
        assert list(got) == [people['ann'] + '@' + HOST], got
        assert legacy_items(await legacy(c, email='ann.smith')) == {}
        # '*' at the end: the beginning of the field
        got = legacy_items(await legacy(c, email='bob@*'))
        assert people['bob'] + '@' + HOST in got, got
        got = legacy_items(await legacy(c, nick='bob*', last=people['family']))
        assert list(got) == [people['bob'] + '@' + HOST], got
        # nothing filled in
        assert error_of(await legacy(c)) == 'not-acceptable'
        await logout(c)
    run(scenario())


def test_form_search_city_organisation_and_limit(server, people, run):
    fam = people['family']

    async def scenario():
        c = await login(server, 'alice')
        got, x = form_items(await form(c, locality='lyon', orgname='initech', last=fam))
        assert set(got) == {people['cid'] + '@' + HOST, people['dee'] + '@' + HOST}, got
        row = got[people['dee'] + '@' + HOST]
        assert row['fn'] == 'Dee Smith' and row['locality'] == 'Lyon' and row['orgname'] == 'Initech'
        reported = x.find(d('reported'))
        assert {f.get('var') for f in reported.findall(d('field'))} >= {'jid', 'fn', 'email'}
        got, _ = form_items(await form(c, fn='ann smith'))
        assert list(got) == [people['ann'] + '@' + HOST], got
        got, _ = form_items(await form(c, user=people['bob']))
        assert list(got) == [people['bob'] + '@' + HOST], got
        # four match, max_results is 3: three answered, the title says more exist
        got, x = form_items(await form(c, last=fam))
        assert len(got) == 3, got
        assert 'more' in (x.findtext(d('title')) or ''), parleytest.tostr(x)
        got, x = form_items(await form(c, last=fam, fn='*'))
        assert len(got) == 3
        got, x = form_items(await form(c, last=fam, orgname='acme'))
        assert len(got) == 2 and x.find(d('title')) is None
        # a form without a value: not acceptable
        assert error_of(await form(c, fn='')) == 'not-acceptable'
        await logout(c)
    run(scenario())


def test_changed_vcard_is_found_by_its_new_fields(server, run):
    u = unique('chg')
    server.register(u, HOST, 'pw-' + u)
    old, new = unique('Old'), unique('New')

    async def scenario():
        await publish(server, u, vcard(fn=old, family=old))
        c = await login(server, 'alice')
        assert list(legacy_items(await legacy(c, last=old))) == [u + '@' + HOST]
        await publish(server, u, vcard(fn=new, family=new))
        assert legacy_items(await legacy(c, last=old)) == {}
        assert list(legacy_items(await legacy(c, last=new))) == [u + '@' + HOST]
        # an account removed is not found any more
        r = server.ctl('unregister', u, HOST)
        assert r.returncode == 0, r.stderr
        assert legacy_items(await legacy(c, last=new)) == {}
        await logout(c)
    run(scenario())


def test_opt_in_when_search_all_is_off(server, run):
    fam = unique('Opt')
    yes, no = unique('yes'), unique('no')
    for n in (yes, no):
        server.register(n, OTHER, 'pw-' + n)

    async def scenario():
        await publish(server, yes, vcard(fn='Listed', family=fam, public=True), OTHER)
        await publish(server, no, vcard(fn='Unlisted', family=fam), OTHER)
        c = await login(server, 'dave', OTHER)
        got = legacy_items(await legacy(c, OTHER, last=fam))
        assert list(got) == ['%s@%s' % (yes, OTHER)], got
        got, _ = form_items(await form(c, OTHER, fn='*'))
        assert '%s@%s' % (no, OTHER) not in got and '%s@%s' % (yes, OTHER) in got, got
        # withdrawing consent: a vCard without CLASS PUBLIC
        await publish(server, yes, vcard(fn='Listed', family=fam), OTHER)
        assert legacy_items(await legacy(c, OTHER, last=fam)) == {}
        await logout(c)
    run(scenario())


def test_only_local_users_search(server, people, run):
    async def scenario():
        # dave is a user of other.local: test.local's directory refuses him
        c = await login(server, 'dave', OTHER)
        assert error_of(await legacy(c, HOST, last=people['family'])) == 'forbidden'
        await logout(c)
    run(scenario())
