"""PEP avatars and vCard photos in step (module avatar, XEP-0398): a vCard
photo is published as the XEP-0084 avatar (data, then metadata, item id
the hex SHA-1 of the image), an avatar published by a client becomes the
vCard photo (and the XEP-0153 hash in presence follows), and empty
metadata removes the photo.  The conversion runs after the client's
request was answered: the tests wait for its result.  Every test registers
fresh users.  Needs the pubsub module with PEP."""
import base64
import hashlib
import time

import pytest

import test_ldap_directory
from parleytest import HOST, q, tostr
from test_avatar import IMAGE, photo_of, presence_with_photo, set_vcard
from test_bookmarks import account_features, eventually, items, publish
from test_presence import expect, make_mutual, new_user, online

NS_VCARD = 'vcard-temp'
NS_DATA = 'urn:xmpp:avatar:data'
NS_METADATA = 'urn:xmpp:avatar:metadata'
NS_CONVERSION = 'urn:xmpp:pep-vcard-conversion:0'

# a PNG signature, so that the type is known from the bytes too
IMAGE2 = b'\x89PNG\r\n\x1a\n' + bytes(range(255, -1, -1)) * 2


def bare(user):
    return '%s@%s' % (user, HOST)


def own(c, user):
    c.bare = bare(user)
    return c


def vcard_photo(c):
    """(TYPE, image bytes) of the user's own vCard, or None without PHOTO."""
    r = c.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD)
    assert r.get('type') == 'result', tostr(r)
    photo = r.find('%s/%s' % (q(NS_VCARD, 'vCard'), q(NS_VCARD, 'PHOTO')))
    if photo is None:
        return None
    b64 = ''.join((photo.findtext(q(NS_VCARD, 'BINVAL')) or '').split())
    return photo.findtext(q(NS_VCARD, 'TYPE')), base64.b64decode(b64)


def metadata_info(c):
    """The <info/> of the current metadata item: None while there is no
    item, False for metadata without <info/> (no avatar)."""
    got = items(c, NS_METADATA)
    if not got:
        return None
    md = list(got.values())[0]
    assert md is not None and md.tag == q(NS_METADATA, 'metadata'), tostr(md)
    info = md.find(q(NS_METADATA, 'info'))
    return info if info is not None else False


def metadata_names(c, digest):
    """The current <info/> when it names digest, else None."""
    info = metadata_info(c)
    return info if info is not None and info is not False and info.get('id') == digest else None


def test_conversion_feature(server):
    u = new_user(server, 'ap')
    c = own(online(server, u), u)
    try:
        assert NS_CONVERSION in account_features(c)
    finally:
        c.close()


def test_vcard_photo_to_pep(server):
    u = new_user(server, 'ap')
    c = own(online(server, u), u)
    try:
        digest = hashlib.sha1(IMAGE).hexdigest()
        set_vcard(c, IMAGE)
        info = eventually(lambda: metadata_names(c, digest), 'the metadata of the vCard photo')
        assert info.get('bytes') == str(len(IMAGE)), tostr(info)
        assert info.get('type') == 'image/png', tostr(info)
        data = items(c, NS_DATA).get(digest)
        assert data is not None and data.tag == q(NS_DATA, 'data'), tostr(data)
        assert base64.b64decode(''.join(data.text.split())) == IMAGE

        # the photo removed: the metadata says no avatar
        set_vcard(c, None)
        eventually(lambda: metadata_info(c) is False, 'empty metadata')
    finally:
        c.close()


def test_pep_avatar_to_vcard_and_presence(server):
    au, bu = new_user(server, 'ap'), new_user(server, 'ap')
    a, b = own(online(server, au), au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        digest = hashlib.sha1(IMAGE2).hexdigest()
        publish(a, NS_DATA, digest,
                "<data xmlns='%s'>%s</data>" % (NS_DATA, base64.b64encode(IMAGE2).decode()))
        publish(a, NS_METADATA, digest,
                "<metadata xmlns='%s'><info id='%s' bytes='%d' type='image/png' width='16' "
                "height='16'/><info id='elsewhere' bytes='10' type='image/png' "
                "url='https://example.org/a.png'/></metadata>" % (NS_METADATA, digest, len(IMAGE2)))
        photo = eventually(lambda: vcard_photo(a), 'the PEP avatar in the vCard')
        assert photo == ('image/png', IMAGE2)
        # XEP-0153: the new hash goes out to the contact
        expect(b, presence_with_photo(a.jid, digest), 'presence with the PEP avatar hash')
        # the server's conversion did not publish back a different item
        info = metadata_info(a)
        assert info is not False and info.get('id') == digest, tostr(info)

        # empty metadata (XEP-0084): the vCard loses its photo
        publish(a, NS_METADATA, 'none', "<metadata xmlns='%s'/>" % NS_METADATA)
        eventually(lambda: vcard_photo(a) is None, 'the vCard photo removed')
        e = expect(b, presence_with_photo(a.jid, ''), 'presence without a photo')
        assert photo_of(e) == '', tostr(e)
    finally:
        a.close()
        b.close()


def test_metadata_without_matching_data_is_ignored(server):
    u = new_user(server, 'ap')
    c = own(online(server, u), u)
    try:
        set_vcard(c, IMAGE)
        digest = hashlib.sha1(IMAGE).hexdigest()
        eventually(lambda: metadata_names(c, digest), 'the vCard photo in PEP')
        # metadata naming an image the data node does not hold: the vCard stays
        publish(c, NS_METADATA, 'f' * 40,
                "<metadata xmlns='%s'><info id='%s' bytes='3' type='image/png'/></metadata>"
                % (NS_METADATA, 'f' * 40))
        time.sleep(0.5)
        assert vcard_photo(c) == ('image/png', IMAGE)
    finally:
        c.close()


# ---- a host whose vCards come from LDAP --------------------------------------------

@pytest.fixture(scope='module')
def ldap_env(tmp_path_factory):
    """test_ldap_directory's directory and server (host dir.local)."""
    d = test_ldap_directory
    s = d.start_slapd(tmp_path_factory, 'slapd-avatar-pep')
    try:
        d.ldap_admin(s, 'ldapadd', d.company_ldif())
    except Exception:
        s.stop()
        raise
    yield from d.serve_with_slapd(tmp_path_factory, 'parley-avatar-pep', d.hosts_yaml(s.uri), (s,),
                                  lambda srv: srv.create_users())


@pytest.mark.skipif(not test_ldap_directory.ldap_built(), reason='parleyd built --without-ldap')
def test_directory_photo_is_the_pep_avatar(ldap_env):
    """The directory's photo is the user's PEP avatar: published at login,
    and published again over a client's own avatar (the vCard is
    read-only)."""
    c = test_ldap_directory.connect(ldap_env, 'grace', presence=True)
    c.bare = 'grace@' + test_ldap_directory.DIR
    try:
        digest = hashlib.sha1(test_ldap_directory.GRACE_PNG).hexdigest()
        info = eventually(lambda: metadata_names(c, digest), 'the directory photo in PEP',
                          timeout=10)
        assert info.get('type') == 'image/png', tostr(info)
        assert info.get('bytes') == str(len(test_ldap_directory.GRACE_PNG)), tostr(info)

        mine = hashlib.sha1(IMAGE2).hexdigest()
        publish(c, NS_DATA, mine,
                "<data xmlns='%s'>%s</data>" % (NS_DATA, base64.b64encode(IMAGE2).decode()))
        publish(c, NS_METADATA, mine,
                "<metadata xmlns='%s'><info id='%s' bytes='%d' type='image/png'/></metadata>"
                % (NS_METADATA, mine, len(IMAGE2)))
        eventually(lambda: metadata_names(c, digest), 'the directory photo published again',
                   timeout=10)
    finally:
        c.close()
