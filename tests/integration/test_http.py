"""The HTTP listener (module: http) with raw sockets: keep-alive, unknown
paths, the limits of the http section (body size, a 1 GB Content-Length
refused before any of it is sent, header count and size, a client that
trickles its request, connections per address), bad requests, host-meta
with CORS, and HTTPS with the certificate chosen by SNI.  Each abuse case
also shows that other clients are still served."""
import json
import select
import socket
import ssl
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, OTHER

REQUEST_TIMEOUT = 2.0
BODY_TIMEOUT = 1.5
MAX_PER_IP = 6


class HttpParleyd(parleytest.Parleyd):
    """parleyd with a plain and a TLS http listener, small http limits, and
    a certificate of its own for OTHER."""

    def write_config(self):
        super().write_config()
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + OTHER, '-addext', 'subjectAltName=DNS:' + OTHER,
             '-keyout', str(self.dir / 'other-key.pem'), '-out', str(self.dir / 'other.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)
        self.http_port = parleytest.free_port()
        self.https_port = parleytest.free_port()
        text = self.config.read_text()
        http = ('http:\n'
                '  request_timeout: %gs\n'
                '  body_timeout: %gs\n'
                '  keepalive_timeout: 30s\n'
                '  max_body_size: 64K\n'
                '  max_headers: 20\n'
                '  max_header_size: 4K\n'
                '  max_connections_per_ip: %d\n'
                '  cors_origins: ["https://app.example"]\n'
                % (REQUEST_TIMEOUT, BODY_TIMEOUT, MAX_PER_IP))
        listen = ('listen:\n'
                  '  - port: %d\n    address: 127.0.0.1\n    module: http\n'
                  '  - port: %d\n    address: 127.0.0.1\n    module: http\n    direct_tls: true\n'
                  % (self.http_port, self.https_port))
        assert 'listen:\n' in text and '  %s: {}\n' % OTHER in text
        text = text.replace('listen:\n', http + listen, 1)
        text = text.replace('  %s: {}\n' % OTHER,
                            '  %s:\n    tls: { certificate: other.pem, key: other-key.pem }\n' % OTHER)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    s = HttpParleyd(tmp_path_factory.mktemp('http'))
    s.start()
    yield s
    s.finish()


def connect(port, timeout=5.0):
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    s.settimeout(timeout)
    return s


class Reader:
    """Reads HTTP/1.1 responses (Content-Length framed) off a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('connection closed')
        self.buf += data

    def response(self, head_request=False):
        while b'\r\n\r\n' not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split(' ')[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(':', 1)
            headers[k.strip().lower()] = v.strip()
        n = 0 if head_request else int(headers.get('content-length', '0'))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self, timeout=5.0):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def get(port, path, host=HOST, extra=''):
    s = connect(port)
    try:
        s.sendall(('GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n'
                   % (path, host, extra)).encode())
        return Reader(s).response()
    finally:
        s.close()


def test_keepalive_two_requests(srv):
    s = connect(srv.http_port)
    r = Reader(s)
    s.sendall(b'GET /.well-known/host-meta HTTP/1.1\r\nHost: test.local:5280\r\n\r\n')
    status, headers, body = r.response()
    assert status == 200
    assert 'xrd+xml' in headers['content-type']
    assert b"rel='urn:xmpp:alt-connections:websocket'" in body
    assert b"href='ws://test.local:5280/xmpp-websocket'" in body
    # the same connection, a second request (and a pipelined third)
    s.sendall(b'GET /.well-known/host-meta.json HTTP/1.1\r\nHost: test.local\r\n\r\n'
              b'HEAD /.well-known/host-meta.json HTTP/1.1\r\nHost: test.local\r\n\r\n')
    status, headers, body = r.response()
    assert status == 200 and headers['content-type'] == 'application/json'
    links = json.loads(body)['links']
    assert links == [{'rel': 'urn:xmpp:alt-connections:websocket',
                      'href': 'ws://test.local/xmpp-websocket'},
                     {'rel': 'urn:xmpp:alt-connections:xbosh',
                      'href': 'http://test.local/http-bind'}]
    # HEAD: the length of GET, no body
    status, headers, body = r.response(head_request=True)
    assert status == 200 and int(headers['content-length']) > 0 and body == b''
    s.sendall(b'GET /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n')
    status, headers, _ = r.response()
    assert status == 200 and headers['connection'] == 'close'
    assert r.closed()
    s.close()


def test_unknown_path_and_method(srv):
    status, _, body = get(srv.http_port, '/no/such/thing')
    assert status == 404 and b'Not Found' in body
    s = connect(srv.http_port)
    s.sendall(b'DELETE /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\n\r\n')
    status, headers, _ = Reader(s).response()
    assert status == 405 and 'GET' in headers['allow']
    s.close()
    # a plain GET of the WebSocket endpoint: it wants an upgrade
    status, headers, _ = get(srv.http_port, '/xmpp-websocket')
    assert status == 426 and headers['upgrade'] == 'websocket'


def test_cors(srv):
    status, headers, _ = get(srv.http_port, '/.well-known/host-meta.json', extra='Origin: https://app.example\r\n')
    assert status == 200 and headers['access-control-allow-origin'] == 'https://app.example'
    status, headers, _ = get(srv.http_port, '/.well-known/host-meta.json', extra='Origin: https://evil.example\r\n')
    assert status == 200 and 'access-control-allow-origin' not in headers
    s = connect(srv.http_port)
    s.sendall(b'OPTIONS /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\n'
              b'Origin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n\r\n')
    status, headers, _ = Reader(s).response()
    assert status == 204 and 'GET' in headers['access-control-allow-methods']
    s.close()


def test_oversized_body(srv):
    s = connect(srv.http_port)
    body = b'x' * (100 * 1024)
    s.sendall(b'POST /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\nContent-Length: %d\r\n\r\n'
              % len(body))
    try:
        s.sendall(body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = Reader(s)
    status, headers, _ = r.response()
    assert status == 413 and headers['connection'] == 'close'
    s.close()
    # chunked: counted as it arrives
    s = connect(srv.http_port)
    chunk = b'%x\r\n%s\r\n' % (40 * 1024, b'y' * (40 * 1024))
    s.sendall(b'POST /x HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n' + chunk + chunk)
    status, _, _ = Reader(s).response()
    assert status == 413
    s.close()
    assert get(srv.http_port, '/.well-known/host-meta')[0] == 200


def test_gigabyte_content_length_refused_unread(srv):
    s = connect(srv.http_port)
    start = time.monotonic()
    s.sendall(b'PUT /upload HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1073741824\r\n\r\n')
    status, headers, _ = Reader(s).response()
    assert status == 413 and headers['connection'] == 'close'
    assert time.monotonic() - start < 2.0
    s.close()
    assert get(srv.http_port, '/.well-known/host-meta')[0] == 200


def test_expect_100_continue(srv):
    """RFC 9110 section 10.1.1: a request with 'Expect: 100-continue'
    whose headers are accepted gets 100 Continue before it sends its body;
    one refused by its headers gets the final status instead, and an
    HTTP/1.0 request's expectation is ignored."""
    body = (b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='test.local'"
            b" wait='1' hold='1'/>")
    head = (b'POST /http-bind HTTP/1.%d\r\nHost: test.local\r\nContent-Type: text/xml; charset=utf-8\r\n'
            b'Expect: 100-continue\r\nContent-Length: %d\r\n\r\n')
    s = connect(srv.http_port, timeout=3)
    r = Reader(s)
    s.sendall(head % (1, len(body)))
    assert r.response()[0] == 100
    s.sendall(body)
    status, _, data = r.response()
    assert status == 200 and b'sid=' in data, data
    s.close()
    s = connect(srv.http_port, timeout=3)
    r = Reader(s)
    s.sendall(head % (1, 1 << 30))
    status, headers, _ = r.response()
    assert status == 413 and headers['connection'] == 'close'
    s.close()
    s = connect(srv.http_port, timeout=3)
    r = Reader(s)
    s.sendall(head % (0, len(body)))
    time.sleep(0.5)
    s.sendall(body)
    status, _, data = r.response()
    assert status == 200 and b'sid=' in data, data
    s.close()


def test_too_many_headers(srv):
    s = connect(srv.http_port)
    hdrs = ''.join('X-H%d: v\r\n' % i for i in range(30))
    s.sendall(('GET / HTTP/1.1\r\nHost: test.local\r\n%s\r\n' % hdrs).encode())
    r = Reader(s)
    status, headers, _ = r.response()
    assert status == 431 and headers['connection'] == 'close'
    assert r.closed()
    s.close()
    # one header larger than max_header_size
    s = connect(srv.http_port)
    s.sendall(('GET / HTTP/1.1\r\nHost: test.local\r\nCookie: %s\r\n\r\n' % ('c' * 8000)).encode())
    status, _, _ = Reader(s).response()
    assert status == 431
    s.close()
    assert get(srv.http_port, '/.well-known/host-meta')[0] == 200


def test_bad_requests(srv):
    for raw in (b'HELLO THERE\r\n\r\n', b'GET / HTTP/1.1\r\nBad Header Line\r\n\r\n',
                b'GET /%zz HTTP/1.1\r\nHost: test.local\r\n\r\n',
                b'GET /a%00b HTTP/1.1\r\nHost: test.local\r\n\r\n',
                b'GET / HTTP/1.1\r\n\r\n'):  # HTTP/1.1 without Host
        s = connect(srv.http_port)
        s.sendall(raw)
        r = Reader(s)
        status, _, _ = r.response()
        assert status == 400, raw
        assert r.closed(), raw
        s.close()
    assert get(srv.http_port, '/.well-known/host-meta')[0] == 200


def test_slowloris_cut_off_while_others_served(srv):
    slow = connect(srv.http_port, timeout=10)
    start = time.monotonic()
    slow.sendall(b'GET /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\nX-Slow: ')
    cut = None
    served = 0
    for _ in range(30):
        time.sleep(0.5)
        # the server answered (408) or closed: cut off
        readable, _, _ = select.select([slow], [], [], 0)
        if readable:
            cut = time.monotonic() - start
            break
        try:
            slow.sendall(b'a')
        except (BrokenPipeError, ConnectionResetError):
            cut = time.monotonic() - start
            break
        # another client is served meanwhile
        assert get(srv.http_port, '/.well-known/host-meta')[0] == 200
        served += 1
    if cut is None:
        pytest.fail('a client trickling its headers was not cut off')
    # within the limit, plus the once-a-second check
    assert cut < REQUEST_TIMEOUT + 2.0, cut
    assert served >= 2
    data = slow.recv(65536)
    assert data == b'' or data.startswith(b'HTTP/1.1 408 '), data
    slow.close()


def test_slowloris_gets_408(srv):
    slow = connect(srv.http_port, timeout=10)
    slow.sendall(b'GET / HTTP/1.1\r\nHost: test.local\r\n')
    start = time.monotonic()
    status, headers, _ = Reader(slow).response()
    assert status == 408 and headers['connection'] == 'close'
    assert time.monotonic() - start < REQUEST_TIMEOUT + 2.0
    slow.close()


def test_slow_body_that_keeps_moving_is_served(srv):
    # request_timeout covers the headers; the body only has to keep moving
    s = connect(srv.http_port, timeout=10)
    body = b'x' * 2000
    s.sendall(b'POST /nowhere HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2000\r\n\r\n')
    start = time.monotonic()
    for i in range(10):
        time.sleep(BODY_TIMEOUT / 3)
        s.sendall(body[i * 200:(i + 1) * 200])
    assert time.monotonic() - start > REQUEST_TIMEOUT + BODY_TIMEOUT
    status, headers, _ = Reader(s).response()
    assert status == 404, status
    s.close()


def test_stalled_body_gets_408(srv):
    s = connect(srv.http_port, timeout=10)
    s.sendall(b'POST /nowhere HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2000\r\n\r\n' + b'x' * 500)
    start = time.monotonic()
    status, headers, _ = Reader(s).response()
    waited = time.monotonic() - start
    assert status == 408 and headers['connection'] == 'close'
    assert BODY_TIMEOUT - 0.2 < waited < BODY_TIMEOUT + 2.0, waited
    s.close()
    assert get(srv.http_port, '/.well-known/host-meta')[0] == 200


def test_connections_per_ip(srv):
    deadline = time.monotonic() + 15
    while True:
        socks = []
        try:
            for _ in range(MAX_PER_IP):
                s = connect(srv.http_port)
                s.sendall(b'GET /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\n\r\n')
                assert Reader(s).response()[0] == 200
                socks.append(s)
            extra = connect(srv.http_port)
            try:
                extra.sendall(b'GET /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\n\r\n')
            except (BrokenPipeError, ConnectionResetError):
                pass
            rd = Reader(extra)
            refused = rd.closed(timeout=3) and rd.buf == b''
            extra.close()
            if refused:
                break
        except (EOFError, ConnectionResetError):
            pass  # earlier tests' connections were still closing: again
        finally:
            for s in socks:
                s.close()
        assert time.monotonic() < deadline, 'the per-address limit did not apply'
        time.sleep(0.3)
    # the places come back when the connections close
    deadline = time.monotonic() + 10
    while True:
        try:
            if get(srv.http_port, '/.well-known/host-meta')[0] == 200:
                break
        except (EOFError, ConnectionResetError):
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_https_sni(srv):
    ctx = parleytest.tls_context()
    other_der = ssl.PEM_cert_to_DER_cert((srv.dir / 'other.pem').read_text())
    main_der = ssl.PEM_cert_to_DER_cert((srv.dir / 'cert.pem').read_text())
    for name, der in ((HOST, main_der), (OTHER, other_der)):
        raw = connect(srv.https_port)
        s = ctx.wrap_socket(raw, server_hostname=name)
        assert s.getpeercert(binary_form=True) == der, name
        s.sendall(('GET /.well-known/host-meta.json HTTP/1.1\r\nHost: %s\r\n\r\n' % name).encode())
        status, _, body = Reader(s).response()
        assert status == 200
        links = json.loads(body)['links']
        assert links[0]['href'] == 'wss://%s/xmpp-websocket' % name
        assert links[1]['href'] == 'https://%s/http-bind' % name
        s.close()


def test_reload_applies_limits(srv):
    """The http section is read at each use: a reload applies it."""
    text = srv.config.read_text()
    assert '  max_headers: 20\n' in text
    srv.config.write_text(text.replace('  max_headers: 20\n', '  max_headers: 10\n'))
    try:
        out = srv.ctl('reload')
        assert 'http: applied' in out.stdout, out.stdout + out.stderr
        s = connect(srv.http_port)
        hdrs = ''.join('X-H%d: v\r\n' % i for i in range(14))
        s.sendall(('GET /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\n%s\r\n' % hdrs).encode())
        assert Reader(s).response()[0] == 431
        s.close()
    finally:
        srv.config.write_text(text)
        srv.ctl('reload')
    s = connect(srv.http_port)
    s.sendall(('GET /.well-known/host-meta HTTP/1.1\r\nHost: test.local\r\n%s\r\n' % hdrs).encode())
    assert Reader(s).response()[0] == 200
    s.close()
