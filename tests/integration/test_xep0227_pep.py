"""XEP-0227 import of PEP data as Prosody's xep0227 store writes it per
user: <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'> with the
configuration (a submitted node_config form), affiliations and
subscriptions of each node, and <pubsub xmlns='http://jabber.org/protocol/
pubsub'> with the items of each node, oldest first.  After the import the
owner reads every item back over XMPP (bookmarks of XEP-0402, vCard4,
avatar metadata and data, the OMEMO device list and bundle), a contact
with a presence subscription reads what the presence access model allows
and not the private bookmarks, and a stranger reads only the open OMEMO
nodes."""
import parleytest
from parleytest import HOST, tostr
from test_pubsub import NS_PUBSUB, assert_error, form

PW = {'juliet': 'a rose by any other name', 'romeo': 'wherefore art thou',
      'paris': 'county paris'}
NS_BOOKMARKS = 'urn:xmpp:bookmarks:1'
NS_VCARD4 = 'urn:ietf:params:xml:ns:vcard-4.0'
NS_AXOLOTL = 'eu.siacs.conversations.axolotl'
DEVICELIST = NS_AXOLOTL + '.devicelist'
BUNDLE = NS_AXOLOTL + '.bundles:31415'
AVATAR_ID = '2bd6b2ad5dd7f6db13b5bb2ab31ee5e15aa6e6b6'


def configure(node, **fields):
    return "<configure node='%s'>%s</configure>" % (node, form(
        {'pubsub#' + k: v for k, v in fields.items()}))


def items(node, *entries):
    return "<items node='%s'>%s</items>" % (node, ''.join(
        "<item id='%s'>%s</item>" % (i, payload) for i, payload in entries))


def juliet_pep():
    owner = (configure(NS_BOOKMARKS, access_model='whitelist', max_items='max',
                       send_last_published_item='never', persist_items='true')
             + configure('urn:xmpp:vcard4', access_model='presence')
             + configure('urn:xmpp:avatar:metadata', access_model='presence')
             + configure('urn:xmpp:avatar:data', access_model='presence')
             + configure(BUNDLE, access_model='open')
             + "<affiliations node='urn:xmpp:vcard4'><affiliation jid='nurse@%s' "
               "affiliation='member'/></affiliations>" % HOST)
    data = (items(NS_BOOKMARKS,
                  ('balcony@conference.%s' % HOST,
                   "<conference xmlns='%s' name='The Balcony' autojoin='true'><nick>jc</nick>"
                   "</conference>" % NS_BOOKMARKS),
                  ('crypt@conference.%s' % HOST,
                   "<conference xmlns='%s' name='The Crypt'/>" % NS_BOOKMARKS))
            + items('urn:xmpp:vcard4',
                    ('current', "<vcard xmlns='%s'><fn><text>Juliet Capulet</text></fn></vcard>"
                     % NS_VCARD4))
            + items('urn:xmpp:avatar:metadata',
                    (AVATAR_ID, "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='6' "
                     "id='%s' height='1' width='1' type='image/png'/></metadata>" % AVATAR_ID))
            + items('urn:xmpp:avatar:data',
                    (AVATAR_ID, "<data xmlns='urn:xmpp:avatar:data'>cm9zZXMK</data>"))
            # no configuration in the file: the OMEMO device list is open
            + items(DEVICELIST, ('current', "<list xmlns='%s'><device id='31415'/></list>"
                                 % NS_AXOLOTL))
            + items(BUNDLE, ('current', "<bundle xmlns='%s'><signedPreKeyPublic signedPreKeyId='1'>"
                             "AAAA</signedPreKeyPublic><identityKey>BBBB</identityKey></bundle>"
                             % NS_AXOLOTL))
            # no configuration, three items: all three are kept
            + items('urn:example:diary', ('d1', "<entry xmlns='urn:example:diary'>one</entry>"),
                    ('d2', "<entry xmlns='urn:example:diary'>two</entry>"),
                    ('d3', "<entry xmlns='urn:example:diary'>three</entry>")))
    return ("<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>%s</pubsub>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>%s</pubsub>" % (owner, data))


def prosody_file(d, user, inner):
    (d / ('%s@%s.xml' % (user, HOST))).write_text(
        "<?xml version='1.0' encoding='utf-8'?><server-data xmlns='urn:xmpp:pie:0'>"
        "<host jid='%s'><user name='%s' password='%s'>%s</user></host></server-data>"
        % (HOST, user, PW[user], inner))


def roster(*pairs):
    return "<query xmlns='jabber:iq:roster'>%s</query>" % ''.join(
        "<item jid='%s@%s' subscription='%s'/>" % (u, HOST, sub) for u, sub in pairs)


def ids(r):
    return [i.get('id') for i in r.iter('{%s}item' % NS_PUBSUB)]


def test_import_prosody_pep(tmp_path_factory, run):
    s = parleytest.Parleyd(tmp_path_factory.mktemp('parley-pie-pep'), users={})
    try:
        d = s.dir / 'prosody'
        d.mkdir()
        prosody_file(d, 'juliet', roster(('romeo', 'both')) + juliet_pep())
        prosody_file(d, 'romeo', roster(('juliet', 'both')))
        prosody_file(d, 'paris', '')
        r = s.ctl('import-xep0227', d)
        assert r.returncode == 0 and 'imported 3 users, skipped 0\n' in r.stdout, (r.stdout, r.stderr)
        assert 'note:' not in r.stdout, r.stdout
        rows = s.db_query('SELECT COUNT(*) FROM pubsub_item WHERE owner = ?', ('juliet@' + HOST,))
        assert rows[0][0] == 10, rows
        s.passwords = {(u, HOST): p for u, p in PW.items()}
        s.start()
        run(check_access(s), timeout=60)
    finally:
        if s.running():
            s.finish()


async def check_access(s):
    juliet_jid = 'juliet@' + HOST
    j = await parleytest.login(s, 'juliet')
    romeo = await parleytest.login(s, 'romeo')
    paris = await parleytest.login(s, 'paris')
    try:
        async def get(c, node):
            return await parleytest.iq(c, 'get', juliet_jid,
                                       "<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PUBSUB, node))
        # the owner: every item, as imported
        r = await get(j, NS_BOOKMARKS)
        assert r.get('type') == 'result', tostr(r)
        assert sorted(ids(r)) == ['balcony@conference.%s' % HOST, 'crypt@conference.%s' % HOST], tostr(r)
        confs = {c.get('name'): c for c in r.iter('{%s}conference' % NS_BOOKMARKS)}
        assert confs['The Balcony'].findtext('{%s}nick' % NS_BOOKMARKS) == 'jc', tostr(r)
        r = await get(j, 'urn:xmpp:vcard4')
        assert r.findtext('.//{%s}fn/{%s}text' % (NS_VCARD4, NS_VCARD4)) == 'Juliet Capulet', tostr(r)
        r = await get(j, 'urn:xmpp:avatar:metadata')
        assert r.find('.//{urn:xmpp:avatar:metadata}info').get('id') == AVATAR_ID, tostr(r)
        r = await get(j, 'urn:xmpp:avatar:data')
        assert r.findtext('.//{urn:xmpp:avatar:data}data') == 'cm9zZXMK', tostr(r)
        r = await get(j, DEVICELIST)
        assert r.find('.//{%s}device' % NS_AXOLOTL).get('id') == '31415', tostr(r)
        r = await get(j, 'urn:example:diary')
        assert sorted(ids(r)) == ['d1', 'd2', 'd3'], tostr(r)
        # the imported configuration holds
        r = await parleytest.iq(j, 'get', juliet_jid,
                                "<pubsub xmlns='%s#owner'><configure node='%s'/></pubsub>"
                                % (NS_PUBSUB, NS_BOOKMARKS))
        fields = {f.get('var'): f.findtext('{jabber:x:data}value')
                  for f in r.iter('{jabber:x:data}field')}
        assert fields.get('pubsub#access_model') == 'whitelist', tostr(r)
        assert fields.get('pubsub#send_last_published_item') == 'never', tostr(r)
        # a contact with a presence subscription: presence nodes and open
        # nodes, not the private bookmarks
        for node in ('urn:xmpp:vcard4', 'urn:xmpp:avatar:metadata', DEVICELIST, BUNDLE):
            r = await get(romeo, node)
            assert r.get('type') == 'result' and ids(r), (node, tostr(r))
        r = await get(romeo, NS_BOOKMARKS)
        assert_error(r, 'not-allowed', 'closed-node', what='romeo reads the bookmarks')
        # a stranger: only the open OMEMO nodes
        for node in (DEVICELIST, BUNDLE):
            r = await get(paris, node)
            assert r.get('type') == 'result' and ids(r) == ['current'], (node, tostr(r))
        for node in ('urn:xmpp:vcard4', 'urn:xmpp:avatar:metadata'):
            r = await get(paris, node)
            assert_error(r, 'not-authorized', 'presence-subscription-required',
                         what='paris reads %s' % node)
        r = await get(paris, NS_BOOKMARKS)
        assert_error(r, 'not-allowed', 'closed-node', what='paris reads the bookmarks')
    finally:
        await parleytest.logout(j, romeo, paris)
