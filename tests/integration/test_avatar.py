"""vCard-based avatars (XEP-0153): the server puts the SHA-1 of the vCard
photo into the user's presence (replacing what the client put there), sends
the presence again when a new vCard changes the hash, and puts the hash
into the first presence of a later login.  Every test registers fresh
users."""
import base64
import hashlib

from parleytest import NS_CLIENT, q, tostr
from test_presence import expect, expect_none, make_mutual, new_user, online, presence

NS_UPDATE = 'vcard-temp:x:update'
IMAGE = bytes(range(256)) * 3


def vcard(image=None, name='Juliet'):
    photo = ''
    if image is not None:
        b64 = base64.b64encode(image).decode()
        # folded, as vCards often are
        folded = '\n'.join(b64[i:i + 76] for i in range(0, len(b64), 76))
        photo = '<PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO>' % folded
    return "<vCard xmlns='vcard-temp'><FN>%s</FN>%s</vCard>" % (name, photo)


def set_vcard(c, image=None, name='Juliet'):
    r = c.iq('set', vcard(image, name))
    assert r.get('type') == 'result', tostr(r)


def photo_of(p):
    """The photo hash in presence p: None without <x/>, '' for an empty photo."""
    xs = p.findall(q(NS_UPDATE, 'x'))
    assert len(xs) <= 1, tostr(p)
    if not xs:
        return None
    ph = xs[0].find(q(NS_UPDATE, 'photo'))
    assert ph is not None, tostr(p)
    return ph.text or ''


def presence_with_photo(frm, want):
    def match(e):
        return presence(None, frm)(e) and photo_of(e) == want
    return match


def test_hash_added_and_updated(server):
    au, bu = new_user(server, 'va'), new_user(server, 'vb')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        digest = hashlib.sha1(IMAGE).hexdigest()
        set_vcard(a, IMAGE)
        # the new hash goes out at once, to the contact and the user's
        # other resources
        expect(b, presence_with_photo(a.jid, digest), 'presence with the photo hash')
        a2 = online(server, au)
        try:
            expect(b, presence_with_photo(a2.jid, digest), 'presence of a 2nd resource')
            expect(a2, presence_with_photo(a.jid, digest), 'the other resource, with the hash')
            # the client's own (wrong) update element is replaced
            a.send("<presence><show>away</show><x xmlns='%s'><photo>0000</photo></x>"
                   "</presence>" % NS_UPDATE)
            e = expect(b, presence(None, a.jid), 'away presence')
            assert photo_of(e) == digest, tostr(e)
            assert e.findtext(q(NS_CLIENT, 'show')) == 'away', tostr(e)
            # a new vCard with the same image: no new presence
            set_vcard(a, IMAGE, name='Juliet C.')
            expect_none(b, presence(None, a.jid), 'presence for an unchanged photo')
            # the photo removed: an empty <photo/>, from both resources
            set_vcard(a, None)
            expect(b, presence_with_photo(a.jid, ''), 'presence without a photo')
            expect(b, presence_with_photo(a2.jid, ''), 'the 2nd resource without a photo')
        finally:
            a2.close()
    finally:
        a.close()
        b.close()


def test_hash_in_presence_after_login(server):
    au, bu = new_user(server, 'vl'), new_user(server, 'vm')
    a, b = online(server, au), online(server, bu)
    try:
        make_mutual(a, au, b, bu)
        set_vcard(a, IMAGE[:100])
        digest = hashlib.sha1(IMAGE[:100]).hexdigest()
        expect(b, presence_with_photo(a.jid, digest), 'presence with the photo hash')
        a.close()
        expect(b, presence('unavailable', a.jid), 'unavailable')
        a = online(server, au)
        # the first presence carries the hash (at once, or sent again once
        # the vCard was read)
        expect(b, presence_with_photo(a.jid, digest), 'presence of the new login with the hash')
        # the probe answer b gets when it logs in again carries it too
        b.close()
        b = online(server, bu)
        expect(b, presence_with_photo(a.jid, digest), 'probe answer with the hash')
    finally:
        a.close()
        b.close()
