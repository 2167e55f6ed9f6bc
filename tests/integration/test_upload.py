"""HTTP file upload (XEP-0363): slixmpp's xep_0363 plugin finds the service
in disco, uploads a file and the GET URL gives it back byte for byte; the
service advertises its size limit; oversized, empty and badly named
requests, the quota and a user of another host are refused; on the HTTP
side forged signatures, expired PUT URLs, wrong sizes or types, a second
PUT, path traversal and Range requests; files expire (deleted off the
loop, then 404).  Other users keep chatting meanwhile."""
import asyncio
import hashlib
import json
import http.client
import os
import subprocess
import time
import urllib.parse

import pytest

import parleytest
from parleytest import HOST, OTHER, iq, login, logout, next_message, q, stanza_error, tostr, unique

NS_UPLOAD = 'urn:xmpp:http:upload:0'
NS_XDATA = 'jabber:x:data'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'
MAX_FILE = 200 * 1024
QUOTA = 300 * 1024
SERVICE = 'upload.' + HOST
OTHER_SERVICE = 'upload.' + OTHER
OTHER_EXPIRE = 3       # seconds a file of OTHER lives
OTHER_PUT_TIMEOUT = 2  # seconds a PUT URL of OTHER stays valid


class UploadParleyd(parleytest.Parleyd):
    """parleyd with an http listener and the upload module on both hosts
    (HOST's with a secret_file, OTHER's with short lifetimes and a random
    key), sharing the mount /upload/."""

    def write_config(self):
        super().write_config()
        self.http_port = parleytest.free_port()
        self.folder = self.dir / 'uploads'
        self.other_folder = self.dir / 'uploads-other'
        base = 'http://127.0.0.1:%d/upload/' % self.http_port
        text = self.config.read_text()
        http = 'http:\n  max_body_size: 256K\n'
        listen = ('listen:\n  - port: %d\n    address: 127.0.0.1\n    module: http\n'
                  % self.http_port)
        text = text.replace('listen:\n', http + listen, 1)
        marker = '      register: {'
        secret = self.dir / 'upload.secret'
        secret.write_text('a-long-random-upload-key-%s\n' % os.urandom(8).hex())
        text = text.replace(marker, '      upload: { url: "%s", folder: %s, max_file_size: %d, quota: %d, '
                            'secret_file: %s }\n%s' % (base, self.folder, MAX_FILE, QUOTA, secret, marker), 1)
        assert '  %s: {}\n' % OTHER in text
        text = text.replace('  %s: {}\n' % OTHER,
                            '  %s:\n    modules:\n      upload: { url: "%s", folder: %s, '
                            'max_file_size: 64K, expire_after: %ds, put_timeout: %ds }\n'
                            % (OTHER, base, self.other_folder, OTHER_EXPIRE, OTHER_PUT_TIMEOUT))
        self.config.write_text(text)


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    s = UploadParleyd(tmp_path_factory.mktemp('upload'))
    s.start_with_users()
    yield s
    s.finish()


# ---- helpers ---------------------------------------------------------------------

def request(srv, method, path, body=None, headers=None):
    """(status, headers dict with lower-case names, body) of one request."""
    c = http.client.HTTPConnection('127.0.0.1', srv.http_port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ('?' + u.query if u.query else '')


async def slot(client, name, size, ctype='application/octet-stream', service=SERVICE):
    attrs = "filename='%s' size='%s'" % (name, size)
    if ctype is not None:
        attrs += " content-type='%s'" % ctype
    return await iq(client, 'get', service, "<request xmlns='%s' %s/>" % (NS_UPLOAD, attrs))


def urls(answer):
    s = answer.find(q(NS_UPLOAD, 'slot'))
    assert s is not None, tostr(answer)
    return s.find(q(NS_UPLOAD, 'put')).get('url'), s.find(q(NS_UPLOAD, 'get')).get('url')


def put(srv, put_url, data, ctype='application/octet-stream', length=None):
    headers = {'Content-Type': ctype, 'Content-Length': str(len(data) if length is None else length)}
    return request(srv, 'PUT', path_of(put_url), data, headers)


async def new_user(srv):
    user = unique('up')
    srv.register(user, HOST, 'upload-secret')
    return await login(srv, user, password='upload-secret')


async def find_service(client):
    """(jid, max-file-size) of the first item of HOST whose disco#info has
    the upload feature and identity."""
    items = await iq(client, 'get', HOST, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
    for item in items.iter(q(NS_DISCO_ITEMS, 'item')):
        info = await iq(client, 'get', item.get('jid'), "<query xmlns='%s'/>" % NS_DISCO_INFO)
        feats = {f.get('var') for f in info.iter(q(NS_DISCO_INFO, 'feature'))}
        ids = [(i.get('category'), i.get('type')) for i in info.iter(q(NS_DISCO_INFO, 'identity'))]
        if NS_UPLOAD not in feats or ('store', 'file') not in ids:
            continue
        for f in info.iter(q(NS_XDATA, 'field')):
            if f.get('var') == 'max-file-size':
                return item.get('jid'), int(f.find(q(NS_XDATA, 'value')).text)
    return None, None


def all_files(root):
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


# ---- XMPP side -------------------------------------------------------------------

def test_plugin_uploads_and_downloads_byte_identical(srv, run, tmp_path):
    data = os.urandom(150 * 1024)
    src = tmp_path / 'holiday photo.jpg'
    src.write_bytes(data)

    async def go():
        alice = await login(srv, 'alice', plugins=('xep_0363',))
        # slixmpp 1.8.3's own service lookup (get_info_from_domain) fails
        # on Python 3.11 (it hands coroutines to asyncio.wait), so the
        # service is found here the way it does it: the host's items, the
        # one with the feature, its max-file-size
        plugin = alice.plugin['xep_0363']
        plugin.upload_service, plugin.max_file_size = await find_service(alice)
        assert plugin.upload_service == SERVICE and plugin.max_file_size == MAX_FILE
        get_url = await asyncio.wait_for(plugin.upload_file(str(src), timeout=10), 20)
        await logout(alice)
        return get_url
    get_url = run(go())
    assert get_url.startswith('http://127.0.0.1:%d/upload/' % srv.http_port)
    assert get_url.endswith('/holiday%20photo.jpg')
    status, headers, body = request(srv, 'GET', path_of(get_url))
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert headers['content-type'] == 'image/jpeg'
    assert headers['content-length'] == str(len(data))
    assert headers['content-disposition'].startswith('inline; filename="holiday photo.jpg"')
    assert headers['x-content-type-options'] == 'nosniff'
    # HEAD: the headers, no body
    status, headers, body = request(srv, 'HEAD', path_of(get_url))
    assert status == 200 and body == b'' and headers['content-length'] == str(len(data))
    # stored in the folder under the slot id, never under the user's name
    names = {os.path.basename(p) for p in all_files(srv.folder)}
    assert 'holiday photo.jpg' not in names and len(names) >= 2


def test_disco_advertises_service_and_max_size(srv, run):
    async def go():
        alice = await login(srv, 'alice')
        items = await iq(alice, 'get', HOST, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
        jids = [i.get('jid') for i in items.iter(q(NS_DISCO_ITEMS, 'item'))]
        assert SERVICE in jids, tostr(items)
        info = await iq(alice, 'get', SERVICE, "<query xmlns='%s'/>" % NS_DISCO_INFO)
        await logout(alice)
        return info
    info = run(go())
    feats = {f.get('var') for f in info.iter(q(NS_DISCO_INFO, 'feature'))}
    assert NS_UPLOAD in feats
    ids = [(i.get('category'), i.get('type')) for i in info.iter(q(NS_DISCO_INFO, 'identity'))]
    assert ('store', 'file') in ids
    form = None
    for x in info.iter(q(NS_XDATA, 'x')):
        fields = {f.get('var'): [v.text for v in f.findall(q(NS_XDATA, 'value'))]
                  for f in x.findall(q(NS_XDATA, 'field'))}
        if fields.get('FORM_TYPE') == [NS_UPLOAD]:
            form = fields
    assert form is not None and form['max-file-size'] == [str(MAX_FILE)], tostr(info)


def test_refused_requests(srv, run):
    async def go():
        alice = await login(srv, 'alice')
        big = await slot(alice, 'big.bin', MAX_FILE + 1)
        assert stanza_error(big) == 'not-acceptable', tostr(big)
        ftl = big.find('.//' + q(NS_UPLOAD, 'file-too-large'))
        assert ftl is not None and ftl.find(q(NS_UPLOAD, 'max-file-size')).text == str(MAX_FILE)
        for name in ('../escape.txt', 'a/b.txt', '.hidden', 'back\\slash'):
            a = await slot(alice, name, 10)
            assert stanza_error(a) == 'not-acceptable', (name, tostr(a))
        for size in ('0', '-5', 'many'):
            a = await slot(alice, 'x.txt', size)
            assert stanza_error(a) in ('not-acceptable', 'bad-request'), (size, tostr(a))
        a = await slot(alice, 'x.txt', 10, ctype='bad\ntype')
        assert stanza_error(a) == 'bad-request', tostr(a)
        # a user of another host of this server is not a user of this service
        dave = await login(srv, 'dave', host=OTHER)
        a = await slot(dave, 'x.txt', 10)
        assert stanza_error(a) == 'forbidden', tostr(a)
        # other users are unaffected
        bob = await login(srv, 'bob')
        body = unique('still here ')
        alice.send_message(mto='bob@' + HOST, mbody=body, mtype='chat')
        await next_message(bob, pred=lambda m: m['body'] == body)
        await logout(alice, dave, bob)
    run(go())


def test_quota(srv, run):
    async def go():
        c = await new_user(srv)
        put_url, _ = urls(await slot(c, 'one.bin', 150 * 1024))
        assert put(srv, put_url, os.urandom(150 * 1024))[0] == 201
        # a reserved slot counts as well
        urls(await slot(c, 'two.bin', 150 * 1024))
        over = await slot(c, 'three.bin', 1)
        assert stanza_error(over) == 'resource-constraint', tostr(over)
        assert 'quota' in tostr(over)
        # another user has a quota of their own
        d = await new_user(srv)
        urls(await slot(d, 'mine.bin', 150 * 1024))
        # and may hold 64 unused slots at most (63 more here)
        for i in range(63):
            urls(await slot(d, 'small%d.bin' % i, 1))
        over = await slot(d, 'one-too-many.bin', 1)
        assert stanza_error(over) == 'resource-constraint', tostr(over)
        await logout(c, d)
    run(go())


# ---- HTTP side -------------------------------------------------------------------

def test_put_checks(srv, run):
    async def go():
        alice = await login(srv, 'alice')
        a = await slot(alice, 'notes.txt', 100, ctype='text/plain')
        b = await slot(alice, 'notes.txt', 100, ctype='text/plain')
        await logout(alice)
        return urls(a), urls(b)
    (put_url, get_url), (put2, _) = run(go())
    data = b'n' * 100
    parts = urllib.parse.urlsplit(put_url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    # forged signatures: another signature, another slot's, a later expiry, none
    forged = '%s?e=%s&v=%s' % (parts.path, query['e'], '0' * 64)
    assert put(srv, forged, data)[0] == 403
    other = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(put2).query))
    assert put(srv, '%s?e=%s&v=%s' % (parts.path, other['e'], other['v']), data, 'text/plain')[0] == 403
    assert put(srv, '%s?e=%d&v=%s' % (parts.path, int(query['e']) + 3600, query['v']), data,
               'text/plain')[0] == 403
    assert put(srv, parts.path, data, 'text/plain')[0] == 403
    # wrong size (announced and sent), wrong type
    assert put(srv, put_url, data[:50], 'text/plain')[0] == 400
    assert put(srv, put_url, data + b'x', 'text/plain')[0] == 400
    assert put(srv, put_url, data, 'image/png')[0] == 415
    # nothing stored by these; GET knows no file yet
    assert request(srv, 'GET', path_of(get_url))[0] == 404
    # the real one, then a second PUT to the same slot
    assert put(srv, put_url, data, 'text/plain')[0] == 201
    assert put(srv, put_url, data, 'text/plain')[0] == 409
    status, headers, body = request(srv, 'GET', path_of(get_url))
    assert status == 200 and body == data
    assert headers['content-type'] == 'text/plain'
    # unknown slots and methods
    assert request(srv, 'GET', '/upload/' + 'a' * 32 + '/notes.txt')[0] == 404
    assert request(srv, 'GET', path_of(get_url) + 'x')[0] == 404
    assert request(srv, 'DELETE', path_of(get_url))[0] == 405


def test_slot_without_content_type(srv, run):
    """XEP-0363: a PUT is refused for its Content-Type only when the slot
    named one.  A slot requested without one takes the PUT's (served as
    that when it is a valid media type), or application/octet-stream."""
    data = b'\x89PNG' + b'p' * 96

    async def go():
        alice = await login(srv, 'alice')
        got = [urls(await slot(alice, 'pic%d.png' % i, len(data), ctype=None)) for i in range(3)]
        await logout(alice)
        return got
    (put1, get1), (put2, get2), (put3, get3) = run(go())
    assert put(srv, put1, data, 'image/png')[0] == 201
    status, headers, body = request(srv, 'GET', path_of(get1))
    assert status == 200 and body == data and headers['content-type'] == 'image/png'
    assert put(srv, put2, data, 'no-media-type')[0] == 201
    assert request(srv, 'GET', path_of(get2))[1]['content-type'] == 'application/octet-stream'
    status = request(srv, 'PUT', path_of(put3), data, {'Content-Length': str(len(data))})[0]
    assert status == 201
    assert request(srv, 'GET', path_of(get3))[1]['content-type'] == 'application/octet-stream'


def test_content_type_compared_as_a_media_type(srv, run):
    """The slot's type and the PUT's match as media types (RFC 9110
    section 8.3.1): type and subtype in any case, parameters with or
    without whitespace around ';'; another parameter value is refused."""
    data = b't' * 40

    async def go():
        alice = await login(srv, 'alice')
        a = await slot(alice, 'a.txt', len(data), ctype='text/plain; charset=utf-8')
        await logout(alice)
        return urls(a)
    put_url, get_url = run(go())
    assert put(srv, put_url, data, 'text/plain; charset=latin1')[0] == 415
    assert put(srv, put_url, data, 'text/plain')[0] == 415
    assert put(srv, put_url, data, 'Text/Plain;charset=UTF-8')[0] == 201
    status, headers, body = request(srv, 'GET', path_of(get_url))
    assert status == 200 and body == data
    assert headers['content-type'] == 'text/plain; charset=utf-8'


def test_attachment_and_safe_filename(srv, run):
    data = b'<html><script>alert(1)</script></html>'
    name = 'r\u00e9sum\u00e9 "final".html'

    async def go():
        alice = await login(srv, 'alice')
        a = await slot(alice, name.replace('"', '&quot;'), len(data), ctype='application/x-evil')
        await logout(alice)
        return urls(a)
    put_url, get_url = run(go())
    assert put(srv, put_url, data, 'application/x-evil')[0] == 201
    status, headers, body = request(srv, 'GET', path_of(get_url))
    assert status == 200 and body == data
    cd = headers['content-disposition']
    assert cd.startswith('attachment; filename="r_sum_ _final_.html"'), cd
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.html" in cd
    assert 'sandbox' in headers['content-security-policy']


def test_range_requests(srv, run):
    data = bytes(range(256)) * 40

    async def go():
        alice = await login(srv, 'alice')
        a = await slot(alice, 'range.bin', len(data))
        await logout(alice)
        return urls(a)
    put_url, get_url = run(go())
    assert put(srv, put_url, data)[0] == 201
    path = path_of(get_url)
    for rng, lo, hi in (('bytes=0-99', 0, 99), ('bytes=1000-', 1000, len(data) - 1),
                        ('bytes=-10', len(data) - 10, len(data) - 1),
                        ('bytes=5000-999999', 5000, len(data) - 1)):
        status, headers, body = request(srv, 'GET', path, headers={'Range': rng})
        assert status == 206, rng
        assert headers['content-range'] == 'bytes %d-%d/%d' % (lo, hi, len(data)), rng
        assert body == data[lo:hi + 1], rng
    status, headers, _ = request(srv, 'GET', path, headers={'Range': 'bytes=%d-' % len(data)})
    assert status == 416 and headers['content-range'] == 'bytes */%d' % len(data)
    assert request(srv, 'GET', path, headers={'Range': 'bytes=-0'})[0] == 416
    # several ranges or nonsense: the whole file
    status, _, body = request(srv, 'GET', path, headers={'Range': 'bytes=0-1,5-6'})
    assert status == 200 and body == data
    status, _, body = request(srv, 'GET', path, headers={'Range': 'lines=1-2'})
    assert status == 200 and body == data


def test_path_traversal(srv, run):
    before = all_files(srv.dir)

    async def go():
        alice = await login(srv, 'alice')
        a = await slot(alice, 'trav.txt', 4, ctype='text/plain')
        await logout(alice)
        return urls(a)
    put_url, get_url = run(go())
    assert put(srv, put_url, b'safe', 'text/plain')[0] == 201
    slot_id = urllib.parse.urlsplit(get_url).path.split('/')[2]
    for p in ('/upload/../parley.yml', '/upload/%2e%2e/parley.yml', '/upload/%2e%2e/%2e%2e/etc/passwd',
              '/upload/%s/..%%2f..%%2fparley.yml' % slot_id, '/upload/%s/../parley.yml' % slot_id,
              '/upload/%s/%%2e%%2e/%%2e%%2e/parley.yml' % slot_id, '/upload/%s/' % slot_id,
              '/upload/%s' % slot_id, '/upload/%s.meta/trav.txt' % slot_id[:27]):
        status, _, body = request(srv, 'GET', p)
        assert status in (400, 404), p
        assert b'loglevel' not in body and b'root:' not in body
    for p in ('/upload/../evil.txt', '/upload/%2e%2e/evil.txt', '/upload/%s/..%%2fevil.txt' % slot_id):
        assert request(srv, 'PUT', p, b'evil', {'Content-Type': 'text/plain'})[0] in (400, 403, 404), p
    after = all_files(srv.dir)
    new = {os.path.relpath(f, srv.dir) for f in after - before}
    assert all(f.startswith('uploads' + os.sep) for f in new), new
    assert not any('evil' in f for f in after)
    # the real file is still served
    assert request(srv, 'GET', path_of(get_url))[2] == b'safe'


def test_expired_put_url(srv, run):
    async def go():
        dave = await login(srv, 'dave', host=OTHER)
        a = await slot(dave, 'late.txt', 4, ctype='text/plain', service=OTHER_SERVICE)
        await logout(dave)
        return urls(a)
    put_url, get_url = run(go())
    expires = int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(put_url).query))['e'])
    assert expires <= time.time() + OTHER_PUT_TIMEOUT + 1
    while time.time() <= expires + 1:
        time.sleep(0.2)
    status, _, body = put(srv, put_url, b'late', 'text/plain')
    assert status == 403 and b'expired' in body
    assert request(srv, 'GET', path_of(get_url))[0] == 404


def test_files_expire(srv, run):
    async def go():
        dave = await login(srv, 'dave', host=OTHER)
        a = await slot(dave, 'brief.txt', 5, ctype='text/plain', service=OTHER_SERVICE)
        await logout(dave)
        return urls(a)
    put_url, get_url = run(go())
    assert put(srv, put_url, b'brief', 'text/plain')[0] == 201
    slot_id = urllib.parse.urlsplit(get_url).path.split('/')[2]
    stored = srv.other_folder / slot_id
    assert stored.exists()
    assert request(srv, 'GET', path_of(get_url))[2] == b'brief'
    deadline = time.monotonic() + 30
    while stored.exists() or (srv.other_folder / (slot_id + '.meta')).exists():
        assert time.monotonic() < deadline, 'the expired file was not deleted'
        time.sleep(0.2)
    assert request(srv, 'GET', path_of(get_url))[0] == 404
    assert 'expired' in srv.log()


def test_ctl_list_and_purge(srv, run):
    async def go():
        c = await new_user(srv)
        a = await slot(c, 'one.txt', 3, ctype='text/plain')
        b = await slot(c, 'two.bin', 4)
        await logout(c)
        return str(c.boundjid.user), urls(a), urls(b)
    user, (put_a, get_a), (put_b, get_b) = run(go())
    assert put(srv, put_a, b'one', 'text/plain')[0] == 201
    assert put(srv, put_b, b'two!')[0] == 201
    r = srv.ctl('upload-list', user, HOST)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout
    assert any(ln.split('\t')[1:5] == ['3', 'text/plain', 'one.txt', get_a] for ln in lines), r.stdout
    r = srv.ctl('upload-list', '--json', user, HOST)
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout)
    assert sorted(f['filename'] for f in files) == ['one.txt', 'two.bin']
    assert {f['url'] for f in files} == {get_a, get_b}
    # nothing for another account
    r = srv.ctl('upload-list', 'carol', HOST)
    assert r.returncode == 0 and r.stdout == '', r.stdout
    r = srv.ctl('upload-purge', user, HOST)
    assert r.returncode == 0 and '2 files deleted' in r.stdout, r.stdout + r.stderr
    assert request(srv, 'GET', path_of(get_a))[0] == 404
    assert request(srv, 'GET', path_of(get_b))[0] == 404
    slot_id = urllib.parse.urlsplit(get_a).path.split('/')[2]
    assert not (srv.folder / slot_id).exists() and not (srv.folder / (slot_id + '.meta')).exists()
    assert srv.ctl('upload-list', user, HOST).stdout == ''


def test_restart_keeps_files_and_quota(srv, run):
    """It restarts the shared server: the tests after it start their own."""
    data = os.urandom(150 * 1024)

    async def before():
        c = await new_user(srv)
        a = await slot(c, 'kept.bin', len(data))
        unused = await slot(c, 'unused.bin', 10)
        forged = await slot(c, 'forged.bin', 10)
        untyped = await slot(c, 'untyped.png', 10, ctype=None)
        spelt = await slot(c, 'spelt.txt', 10, ctype='text/plain; charset=utf-8')
        await logout(c)
        return (str(c.boundjid.user), urls(a), urls(unused), urls(forged), urls(untyped),
                urls(spelt))
    user, (put_url, get_url), (unused_put, unused_get), (forged_put, _), (untyped_put, untyped_get), \
        (spelt_put, spelt_get) = run(before())
    assert put(srv, put_url, data)[0] == 201
    srv.stop()
    srv.start()
    # the scan at start finds the file again: served, and counted in the quota
    deadline = time.monotonic() + 20
    while request(srv, 'GET', path_of(get_url))[0] != 200:
        assert time.monotonic() < deadline, 'the stored file is not served after a restart'
        time.sleep(0.2)
    assert request(srv, 'GET', path_of(get_url))[2] == data
    # a PUT URL handed out before the restart still works (the key is in
    # secret_file), but only as signed: another owner or size is refused
    parts = urllib.parse.urlsplit(forged_put)
    query = dict(urllib.parse.parse_qsl(parts.query))
    for o, size in ((b'alice'.hex(), 10), (query['o'], 11)):
        bad = '%s?e=%s&o=%s&v=%s' % (parts.path, query['e'], o, query['v'])
        assert put(srv, bad, b'x' * size)[0] == 404
    assert put(srv, unused_put, b'x' * 10)[0] == 201
    assert put(srv, unused_put, b'x' * 10)[0] == 409
    assert request(srv, 'GET', path_of(unused_get))[2] == b'x' * 10
    # one that named no content type takes the PUT's after a restart too
    assert put(srv, untyped_put, b'y' * 10, 'image/png')[0] == 201
    assert request(srv, 'GET', path_of(untyped_get))[1]['content-type'] == 'image/png'
    # the slot's type spelt otherwise (RFC 9110 §8.3.1) is still its type
    # after a restart, as before it (test_content_type_compared_as_a_media_type);
    # another type is not
    assert put(srv, spelt_put, b'z' * 10, 'text/html;charset=utf-8')[0] == 404
    assert put(srv, spelt_put, b'z' * 10, 'Text/Plain;CHARSET=UTF-8')[0] == 201
    assert request(srv, 'GET', path_of(spelt_get))[2] == b'z' * 10

    async def after():
        c = await login(srv, user, password='upload-secret')
        over = await slot(c, 'more.bin', 200 * 1024)
        ok = await slot(c, 'less.bin', 100 * 1024 - 30)
        await logout(c)
        return over, ok
    over, ok = run(after())
    assert stanza_error(over) == 'resource-constraint', tostr(over)
    assert ok.get('type') == 'result', tostr(ok)


def bad_server(tmp_path_factory, upload, http='256K'):
    s = UploadParleyd(tmp_path_factory.mktemp('upload-bad'))
    text = s.config.read_text()
    start = text.index('      upload: {')
    end = text.index('\n', start)
    text = text[:start] + '      upload: %s' % upload + text[end:]
    s.config.write_text(text.replace('  max_body_size: 256K\n', '  max_body_size: %s\n' % http))
    return s


def test_bad_configuration(tmp_path_factory):
    for bad, key in (('{ folder: /tmp/x }', 'url'),
                     ('{ url: "http://h/upload/", folder: relative/dir }', 'folder'),
                     ('{ url: "http://h/upload/" }', 'folder'),
                     ('{ url: "http://h/upload/", folder: /tmp/x, path: upload }', 'path'),
                     ('{ url: "http://h/upload/", folder: /tmp/x, secret_file: s.txt }', 'secret_file'),
                     ('{ url: "http://h/upload/", folder: /tmp/x, max_file_size: 0 }', 'max_file_size')):
        s = bad_server(tmp_path_factory, bad)
        r = subprocess.run([s.parleyd, '-t', '-c', str(s.config)], capture_output=True, text=True,
                           cwd=str(s.dir), env=s.env, timeout=30)
        out = r.stdout + r.stderr
        assert r.returncode != 0, 'upload %s accepted: %s' % (bad, out)
        assert 'parley.yml:' in out and 'upload' in out and key in out, out
    # a key file with too short a key
    short = tmp_path_factory.mktemp('k') / 'short.secret'
    short.write_text('short\n')
    s = bad_server(tmp_path_factory, '{ url: "http://h/upload/", folder: %s, max_file_size: 64K, secret_file: %s }'
                   % (tmp_path_factory.mktemp('f') / 'up', short))
    with pytest.raises(parleytest.ServerError) as e:
        s.start()
    assert 'secret_file' in str(e.value)
    # files larger than the http body limit are fine (bodies are streamed),
    # the option's own bound is not
    s = bad_server(tmp_path_factory, '{ url: "http://h/upload/", folder: %s, max_file_size: 2M }'
                   % (tmp_path_factory.mktemp('f') / 'up'), http='1M')
    r = subprocess.run([s.parleyd, '-t', '-c', str(s.config)], capture_output=True, text=True,
                       cwd=str(s.dir), env=s.env, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    s = bad_server(tmp_path_factory, '{ url: "http://h/upload/", folder: %s, max_file_size: 2T }'
                   % (tmp_path_factory.mktemp('f') / 'up'))
    r = subprocess.run([s.parleyd, '-t', '-c', str(s.config)], capture_output=True, text=True,
                       cwd=str(s.dir), env=s.env, timeout=30)
    assert r.returncode != 0 and 'max_file_size' in r.stdout + r.stderr
