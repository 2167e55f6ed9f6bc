"""A WebSocket client for XMPP over WebSocket (RFC 7395) tests: the
RawClient of parleytest with RFC 6455 framing of its own (so that a test
can also send frames a correct client never sends: unmasked, oversized,
bad UTF-8, binary, fragmented).  Each text message from the server is one
element; <open/> stands for the stream header and <close/> for its end."""
import base64
import hashlib
import os
import socket
import struct
import time
import xml.etree.ElementTree as ET
from collections import deque

import parleytest
from parleytest import HOST, NS_STREAM, RawClient, q

NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing'
WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeRefused(Exception):
    def __init__(self, status, response):
        super().__init__('%d: %r' % (status, response))
        self.status = status
        self.response = response


def frame(opcode, payload, mask=True, fin=True):
    if isinstance(payload, str):
        payload = payload.encode('utf-8')
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack('!H', n)
    else:
        head += bytes([m | 127]) + struct.pack('!Q', n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsClient(RawClient):
    """RawClient over WebSocket: send() frames each call as one text message."""

    def __init__(self, port, tls=False, timeout=5.0, host=HOST, path='/xmpp-websocket',
                 protocol='xmpp', version='13'):
        self.close_code = None    # the code of the server's close frame
        self.pongs = []
        self.raw = b''
        self.fragments = None
        super().__init__(port, direct_tls=tls, timeout=timeout, host=host)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ('GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
               'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n' % (path, host, key, version))
        if protocol is not None:
            req += 'Sec-WebSocket-Protocol: %s\r\n' % protocol
        self.sock.sendall((req + '\r\n').encode())
        while b'\r\n\r\n' not in self.raw:
            data = self.sock.recv(65536)
            if not data:
                raise HandshakeRefused(0, self.raw)
            self.raw += data
        head, self.raw = self.raw.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split(' ')[1])
        if status != 101:
            raise HandshakeRefused(status, head)
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(':', 1) for ln in lines[1:])}
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert headers['sec-websocket-accept'] == want, headers
        assert headers['sec-websocket-protocol'] == 'xmpp', headers

    def _reset_parser(self):
        self.pending = deque()

    # ---- frames -----------------------------------------------------------
    def send_frame(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.closed = True

    def send(self, data):
        self.send_frame(frame(OP_TEXT, data))

    def _frames(self):
        """Complete frames in self.raw: (fin, opcode, payload)."""
        out = []
        while len(self.raw) >= 2:
            b0, b1 = self.raw[0], self.raw[1]
            n = b1 & 0x7f
            off = 2
            if n == 126:
                if len(self.raw) < 4:
                    break
                n = struct.unpack('!H', self.raw[2:4])[0]
                off = 4
            elif n == 127:
                if len(self.raw) < 10:
                    break
                n = struct.unpack('!Q', self.raw[2:10])[0]
                off = 10
            assert not b1 & 0x80, 'the server masked a frame'
            if len(self.raw) < off + n:
                break
            out.append((bool(b0 & 0x80), b0 & 0x0f, self.raw[off:off + n]))
            self.raw = self.raw[off + n:]
        return out

    def _message(self, text):
        el = ET.fromstring(text)
        if el.tag == q(NS_FRAMING, 'open'):
            self.header = dict(el.attrib)
        elif el.tag == q(NS_FRAMING, 'close'):
            self.received.append(el)
            self.pending.append(el)
        else:
            self.received.append(el)
            self.pending.append(el)

    def _read_some(self, timeout):
        frames = self._frames()
        if not frames:
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                raise
            except OSError:
                data = b''
            if not data:
                self.closed = True
                self.pending.append(None)
                return
            self.raw += data
            frames = self._frames()
        for fin, op, payload in frames:
            if op == OP_PING:
                self.send_frame(frame(OP_PONG, payload))
            elif op == OP_CLOSE:
                self.close_code = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else 1005
                self.send_frame(frame(OP_CLOSE, payload[:2]))
                self.closed = True
                self.pending.append(None)
                return
            elif op in (OP_TEXT, OP_CONT):
                self.fragments = payload if op == OP_TEXT else self.fragments + payload
                if fin:
                    self._message(self.fragments.decode('utf-8'))
                    self.fragments = None
            elif op == OP_PONG:
                self.pongs.append(payload)

    def wait_close_code(self, timeout=None):
        """Read until the server's close frame (or the end); its code."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.close_code is None and not (self.closed and not self.raw):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no close frame')
            if self.next(left) is None:
                break
        return self.close_code

    def close(self):
        try:
            if not self.closed:
                self.sock.sendall(frame(OP_CLOSE, struct.pack('!H', 1000)))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    # ---- the XMPP steps ----------------------------------------------------
    def open(self, to=None, **kw):
        self.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, to or self.host))
        self.features = self.wait_for(lambda e: e.tag == q(NS_STREAM, 'features'),
                                      what='stream features')
        return self.features

    def login(self, user, password, resource=None, presence=True):
        """PLAIN (the client connected over TLS), bind, presence."""
        self.open()
        r = self.auth_plain(user, password)
        assert r.tag == q(parleytest.NS_SASL, 'success'), 'login %s failed' % user
        self.open()
        jid = self.bind(resource)
        if presence:
            self.send('<presence/>')
            self.iq('get', "<ping xmlns='%s'/>" % parleytest.NS_PING, to=self.host)
        return jid
