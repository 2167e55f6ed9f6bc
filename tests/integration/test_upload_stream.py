"""Streamed HTTP upload bodies and downloads (XEP-0363 over http):
slixmpp's xep_0363 plugin uploads a file larger than http.max_body_size
and than 64 MiB, the download (whole and by Range) comes back byte for
byte while parleyd's resident memory stays bounded (a reader that stops
reading holds no more than a few pieces on the server); a PUT cut off
leaves no file and the slot can be used again; a slow upload that keeps
moving beats both timeouts, a stalled one gets 408 and leaves nothing;
"Expect: 100-continue" gets its 100; a PUT refused before its body closes
the connection.  Other clients are served meanwhile."""
import asyncio
import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.parse

import pytest

import parleytest
from parleytest import HOST, iq, login, logout, q, tostr

NS_UPLOAD = 'urn:xmpp:http:upload:0'
SERVICE = 'upload.' + HOST
SANITIZED = parleytest.built_with_sanitizers()
# larger than 64 MiB and than max_body_size; AddressSanitizer's quarantine
# keeps freed pieces (up to 256 MB), so that build moves less and skips the
# memory bound
BIG = 3 * 1024 * 1024 + 12345 if SANITIZED else (64 << 20) + 1234567
MAX_BODY = 64 * 1024
BODY_TIMEOUT = 2.0
REQUEST_TIMEOUT = 1.5
RSS_BOUND_KIB = 24 * 1024  # growth allowed while a big file goes through


class StreamParleyd(parleytest.Parleyd):
    """parleyd with an http listener whose body limit is small, short
    request and body timeouts, and uploads of up to 100 MiB."""

    def write_config(self):
        super().write_config()
        self.http_port = parleytest.free_port()
        self.folder = self.dir / 'uploads'
        base = 'http://127.0.0.1:%d/upload/' % self.http_port
        text = self.config.read_text()
        http = ('http:\n  max_body_size: %d\n  request_timeout: %gs\n  body_timeout: %gs\n'
                % (MAX_BODY, REQUEST_TIMEOUT, BODY_TIMEOUT))
        listen = ('listen:\n  - port: %d\n    address: 127.0.0.1\n    module: http\n'
                  % self.http_port)
        text = text.replace('listen:\n', http + listen, 1)
        marker = '      register: {'
        text = text.replace(marker, '      upload: { url: "%s", folder: %s, max_file_size: 100M, '
                            'quota: 0 }\n%s' % (base, self.folder, marker), 1)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    s = StreamParleyd(tmp_path_factory.mktemp('upload-stream'))
    s.start_with_users()
    yield s
    s.finish()


def rss_kib(srv, what='VmRSS'):
    with open('/proc/%d/status' % srv.proc.pid) as f:
        for line in f:
            if line.startswith(what + ':'):
                return int(line.split()[1])
    raise AssertionError('no ' + what)


class RssWatch:
    """Samples parleyd's VmRSS every 20 ms in a thread; peak in KiB (and
    the high-water mark VmHWM, when it rose meanwhile, so that a short peak
    between samples counts too)."""

    def __init__(self, srv):
        self.srv = srv
        self.peak = rss_kib(srv)
        self.hwm = rss_kib(srv, 'VmHWM')
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.srv))
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        hwm = rss_kib(self.srv, 'VmHWM')
        if hwm > self.hwm:
            self.peak = max(self.peak, hwm)


def generated(size):
    """size bytes that differ everywhere (no two pieces alike, so a piece
    written twice or out of order shows)."""
    return hashlib.shake_128(b'parley upload %d' % size).digest(size)


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ('?' + u.query if u.query else '')


async def slot(client, name, size, ctype='application/octet-stream'):
    a = await iq(client, 'get', SERVICE, "<request xmlns='%s' filename='%s' size='%d' content-type='%s'/>"
                 % (NS_UPLOAD, name, size, ctype))
    s = a.find(q(NS_UPLOAD, 'slot'))
    assert s is not None, tostr(a)
    return s.find(q(NS_UPLOAD, 'put')).get('url'), s.find(q(NS_UPLOAD, 'get')).get('url')


def new_slot(srv, run, name, size):
    async def go():
        alice = await login(srv, 'alice')
        urls = await slot(alice, name, size)
        await logout(alice)
        return urls
    return run(go())


def request(srv, method, path, body=None, headers=None):
    c = http.client.HTTPConnection('127.0.0.1', srv.http_port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def fifo_slot(srv, run, name):
    """A slot whose stored file is then replaced by a FIFO: a download of
    it holds the upload worker in open() until the FIFO gets a writer.
    (the FIFO's path, the download's URL)."""
    put, get = new_slot(srv, run, name, 10)
    assert request(srv, 'PUT', path_of(put), b'0123456789',
                   {'Content-Type': 'application/octet-stream'})[0] == 201
    fifo = srv.folder / slot_id(get)
    os.unlink(fifo)
    os.mkfifo(fifo)
    return fifo, get


def release_fifo(fifo, writer):
    """End a test that held the upload worker in open() of a FIFO: the
    FIFO goes first, so that a download still queued for it fails at once
    (no such file) instead of blocking the worker in open() again once the
    test's writer is closed, which would hold every later test's jobs."""
    try:
        os.unlink(fifo)
    except FileNotFoundError:
        pass
    os.close(writer)


def files_of(srv, slot_id):
    return sorted(n for n in os.listdir(srv.folder) if n.startswith(slot_id))


def slot_id(url):
    return urllib.parse.urlsplit(url).path.split('/')[2]


def put_head(put_url, size, extra=''):
    return ('PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n'
            'Content-Length: %d\r\n%s\r\n' % (path_of(put_url), size, extra)).encode()


def status_of(sock, timeout=10):
    """The status of the answer on sock, or None when it was closed unanswered."""
    sock.settimeout(timeout)
    data = b''
    try:
        while b'\r\n' not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    if not data.startswith(b'HTTP/1.1 '):
        return None
    return int(data.split(b' ', 2)[1])


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def host_meta_ok(srv):
    return request(srv, 'GET', '/.well-known/host-meta')[0] == 200


def test_big_file_round_trip_with_bounded_memory(srv, run, tmp_path):
    data = generated(BIG)
    src = tmp_path / 'big.bin'
    src.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    base = rss_kib(srv)

    async def go():
        alice = await login(srv, 'alice', plugins=('xep_0363',))
        plugin = alice.plugin['xep_0363']
        # slixmpp 1.8.3's own service lookup fails on Python 3.11 (see test_upload.py)
        plugin.upload_service, plugin.max_file_size = SERVICE, 100 << 20
        get_url = await asyncio.wait_for(plugin.upload_file(str(src), timeout=300), 320)
        await logout(alice)
        return get_url
    with RssWatch(srv) as up:
        get_url = run(go())
    del data
    assert files_of(srv, slot_id(get_url)) == [slot_id(get_url), slot_id(get_url) + '.meta']
    assert os.path.getsize(srv.folder / slot_id(get_url)) == BIG

    # the download, read slowly at first: the server queues a few pieces, not the file
    with RssWatch(srv) as down:
        c = http.client.HTTPConnection('127.0.0.1', srv.http_port, timeout=60)
        c.request('GET', path_of(get_url))
        r = c.getresponse()
        assert r.status == 200 and int(r.getheader('Content-Length')) == BIG
        h = hashlib.sha256()
        first = r.read(1 << 20)
        h.update(first)
        time.sleep(1.0)
        assert host_meta_ok(srv)  # others are served meanwhile
        got = len(first)
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        c.close()
    assert got == BIG and h.hexdigest() == want

    # a range past 64 MiB (or near the end of a smaller file)
    start = BIG - 1000
    status, headers, body = request(srv, 'GET', path_of(get_url),
                                    headers={'Range': 'bytes=%d-%d' % (start, start + 99)})
    assert status == 206 and headers['content-range'] == 'bytes %d-%d/%d' % (start, start + 99, BIG)
    assert body == generated(BIG)[start:start + 100]
    print('RSS KiB: before %d, upload peak %d, download peak %d' % (base, up.peak, down.peak))
    if not SANITIZED:
        assert up.peak - base < RSS_BOUND_KIB, 'upload: RSS %d KiB -> %d KiB' % (base, up.peak)
        assert down.peak - base < RSS_BOUND_KIB, 'download: RSS %d KiB -> %d KiB' % (base, down.peak)


def test_cut_off_upload_leaves_no_file_and_slot_is_usable_again(srv, run):
    size = 4 << 20
    data = generated(size)
    put_url, get_url = new_slot(srv, run, 'cut.bin', size)
    sid = slot_id(put_url)
    s = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
    s.sendall(put_head(put_url, size) + data[:1 << 20])
    # the first pieces reach the folder as a part file...
    assert wait_for(lambda: any(n.endswith('.part') for n in files_of(srv, sid))), files_of(srv, sid)
    s.close()
    # ...which goes when the client does
    assert wait_for(lambda: files_of(srv, sid) == []), files_of(srv, sid)
    assert request(srv, 'GET', path_of(get_url))[0] == 404
    # the slot takes a whole upload afterwards
    status, _, _ = request(srv, 'PUT', path_of(put_url), data,
                           {'Content-Type': 'application/octet-stream'})
    assert status == 201
    status, _, body = request(srv, 'GET', path_of(get_url))
    assert status == 200 and body == data


def test_slow_upload_that_keeps_moving_succeeds(srv, run):
    size = 48 * 1024
    data = generated(size)
    put_url, get_url = new_slot(srv, run, 'slow.bin', size)
    s = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
    s.sendall(put_head(put_url, size))
    pieces = 16
    step = size // pieces
    started = time.monotonic()
    for i in range(pieces):  # about 5 s in all: beyond both timeouts, never still for one
        time.sleep(0.3)
        s.sendall(data[i * step:(i + 1) * step])
    assert time.monotonic() - started > max(BODY_TIMEOUT, REQUEST_TIMEOUT) * 2
    assert status_of(s) == 201
    s.close()
    status, _, body = request(srv, 'GET', path_of(get_url))
    assert status == 200 and body == data


def test_stalled_upload_gets_408_and_leaves_nothing(srv, run):
    size = 2 << 20
    data = generated(size)
    put_url, get_url = new_slot(srv, run, 'stalled.bin', size)
    sid = slot_id(put_url)
    s = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
    s.sendall(put_head(put_url, size) + data[:600 * 1024])
    assert wait_for(lambda: any(n.endswith('.part') for n in files_of(srv, sid)))
    t0 = time.monotonic()
    st = status_of(s, timeout=BODY_TIMEOUT + 5)
    waited = time.monotonic() - t0
    assert st in (408, None), st
    assert waited >= BODY_TIMEOUT - 0.5, waited
    s.close()
    assert wait_for(lambda: files_of(srv, sid) == []), files_of(srv, sid)
    assert host_meta_ok(srv)
    # and the slot is still there for a real upload
    assert request(srv, 'PUT', path_of(put_url), data, {'Content-Type': 'application/octet-stream'})[0] == 201


def test_expect_100_continue(srv, run):
    size = 300 * 1024
    data = generated(size)
    put_url, get_url = new_slot(srv, run, 'expect.bin', size)
    s = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
    s.sendall(put_head(put_url, size, 'Expect: 100-continue\r\n'))
    assert status_of(s) == 100
    s.sendall(data)
    # the rest of the 100's blank line, then the 201
    buf = b''
    while b'201 Created' not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    s.close()
    assert request(srv, 'GET', path_of(get_url))[2] == data


def test_refused_put_is_not_read_and_closes(srv, run):
    size = 8 << 20
    put_url, _ = new_slot(srv, run, 'forged.bin', size)
    parts = urllib.parse.urlsplit(put_url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    forged = '%s?e=%s&v=%s' % (parts.path, query['e'], '0' * 64)
    s = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
    s.sendall(put_head(forged, size))
    # answered before the body, which is never read into a file
    s.settimeout(10)
    head = s.recv(4096)
    assert head.startswith(b'HTTP/1.1 403 ') and b'Connection: close' in head, head
    s.close()
    assert files_of(srv, slot_id(put_url)) == []
    assert host_meta_ok(srv)


def test_get_with_a_body_is_not_cut_off_by_the_body_timeout(srv, run):
    # a GET that carries a body its handler never reads: the download is
    # read slowly, for longer than body_timeout, and still comes whole
    size = 12 << 20
    data = generated(size)
    put_url, get_url = new_slot(srv, run, 'getbody.bin', size)
    assert request(srv, 'PUT', path_of(put_url), data, {'Content-Type': 'application/octet-stream'})[0] == 201
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.settimeout(30)
    s.connect(('127.0.0.1', srv.http_port))
    s.sendall(('GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello'
               % path_of(get_url)).encode())
    got = s.recv(64 * 1024)
    assert got.startswith(b'HTTP/1.1 200 '), got[:200]
    time.sleep(BODY_TIMEOUT + 2)
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    s.close()
    head, _, body = got.partition(b'\r\n\r\n')
    assert len(body) == size and body == data, (len(body), head)
    assert host_meta_ok(srv)


def test_put_refused_by_a_full_worker_queue_gets_503(srv, run):
    # the upload worker is held in open() of a download whose file is a
    # FIFO, downloads fill its queue, then a PUT's first piece cannot be
    # queued: it gets 503 and the server goes on (a build with
    # AddressSanitizer also shows the put is not used once freed)
    fifo, held_get = fifo_slot(srv, run, 'held.bin')
    socks = []
    try:
        for i in range(300):  # more than the queue holds, from a few addresses (http.max_connections_per_ip)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(('127.0.0.%d' % (2 + i // 30), 0))
            s.settimeout(10)
            s.connect(('127.0.0.1', srv.http_port))
            s.sendall(('GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' % path_of(held_get)).encode())
            socks.append(s)
        # the queue is full once downloads are refused
        assert status_of(socks[-1]) == 503
        size = 300 * 1024
        data = generated(size)
        put_url, get_url = new_slot(srv, run, 'refused.bin', size)
        p = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
        p.sendall(put_head(put_url, size))
        try:
            p.sendall(data)
        except OSError:
            pass
        assert status_of(p) == 503
        p.close()
        assert srv.proc.poll() is None
    finally:
        for s in socks:
            s.close()
        # a writer: the held open() returns, the jobs behind it fail at once
        unblock = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        assert wait_for(lambda: host_meta_ok(srv))
        assert wait_for(lambda: files_of(srv, slot_id(put_url)) == []), files_of(srv, slot_id(put_url))
        # the worker is free again: the slot takes the upload (503 while
        # the refused downloads still drain from the queue, which takes a
        # while in a sanitizer build on a busy machine)
        deadline = time.monotonic() + 60
        while True:
            status = request(srv, 'PUT', path_of(put_url), data,
                             {'Content-Type': 'application/octet-stream'})[0]
            if status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 201
        assert request(srv, 'GET', path_of(get_url))[2] == data
    finally:
        release_fifo(fifo, unblock)


def test_upload_finished_while_its_client_went_is_stored(srv, run):
    # the last piece waits on the worker (held in open() of a download
    # whose file is a FIFO) while the client goes: the file is renamed
    # into place all the same, and the slot serves it
    fifo, held_get = fifo_slot(srv, run, 'held2.bin')
    g = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
    g.sendall(('GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' % path_of(held_get)).encode())
    size = 100 * 1024
    data = generated(size)
    put_url, get_url = new_slot(srv, run, 'gone.bin', size)
    p = socket.create_connection(('127.0.0.1', srv.http_port), timeout=10)
    p.sendall(put_head(put_url, size) + data)
    time.sleep(0.5)  # the whole body is in: its job waits behind the download
    p.close()
    time.sleep(0.5)  # the server saw the client go
    unblock = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        assert wait_for(lambda: files_of(srv, slot_id(put_url)) == [slot_id(put_url), slot_id(put_url) + '.meta'])
        assert wait_for(lambda: request(srv, 'GET', path_of(get_url))[0] == 200)
        assert request(srv, 'GET', path_of(get_url))[2] == data
    finally:
        release_fifo(fifo, unblock)
        g.close()
