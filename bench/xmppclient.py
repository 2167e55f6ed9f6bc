"""A small blocking XMPP client for the benchmark scripts (bench/sm-resume.py,
bench/mam-xmpp-query.py): one stream over a raw socket, STARTTLS with an
optional TLS session to resume, SASL SCRAM-SHA-1 (the client keys derived
once per salt with hashlib.pbkdf2_hmac) over SASL1 or SASL2 (XEP-0388, with
extra children of <authenticate/>), iq round trips, and XEP-0198 acks
counted (h) and answered.  Not a general client: it does what the
benchmarks need and fails loudly (Fail) on anything else.
XMPP_DEBUG=1 prints every element received to stderr.
"""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import sys
import threading
import xml.etree.ElementTree as ET

NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_SM = "urn:xmpp:sm:3"
NS_CLIENT = "jabber:client"
STANZAS = {f"{{{NS_CLIENT}}}message", f"{{{NS_CLIENT}}}presence", f"{{{NS_CLIENT}}}iq"}


DEBUG = os.environ.get("XMPP_DEBUG") == "1"   # every element received, to stderr


def add_server_args(ap, timeout):
    """The options every benchmark client takes: where the server is, the
    domain, the users' prefix and password, the server's pids, a socket
    timeout and a label for the JSON line."""
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("-D", "--domain", default="bench.local")
    ap.add_argument("-u", "--prefix", default="u")
    ap.add_argument("-k", "--password", default="pass")
    ap.add_argument("-P", "--pids", required=True, help="the server's pids, for its CPU")
    ap.add_argument("-T", "--timeout", type=float, default=timeout)
    ap.add_argument("-L", "--label", default="")


def pid_list(s):
    return [int(p) for p in s.replace(",", " ").split()]


class Fail(Exception):
    pass


def cpu_of(pids):
    hz = os.sysconf("SC_CLK_TCK")
    t = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        t += (int(rest[11]) + int(rest[12])) / hz
    return t


SALTED = {}
SALTED_LOCK = threading.Lock()


def salted_password(password, salt, iters):
    key = (salt, iters)
    with SALTED_LOCK:
        if key in SALTED:
            return SALTED[key]
    v = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iters)
    with SALTED_LOCK:
        SALTED[key] = v
    return v


class ScramSha1:
    """The client side of SCRAM-SHA-1 (RFC 5802, no channel binding), one
    exchange: initial() is the client-first message, step() answers the
    server-first one, verify() checks the server's signature.  A SASL2
    mechanism for Stream.sasl2 is any object with these and a name."""
    name = "SCRAM-SHA-1"

    def __init__(self, user, password):
        self.password = password
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={user},r={self.cnonce}"
        self.auth_msg = self.salted = None

    def initial(self):
        return ("n,," + self.first_bare).encode()

    def step(self, challenge):
        server_first = challenge.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self.cnonce):
            raise Fail("bad server nonce")
        self.salted = salted_password(self.password, salt, iters)
        ckey = hmac.new(self.salted, b"Client Key", hashlib.sha1).digest()
        stored = hashlib.sha1(ckey).digest()
        final_wo = f"c=biws,r={nonce}"
        self.auth_msg = f"{self.first_bare},{server_first},{final_wo}".encode()
        sig = hmac.new(stored, self.auth_msg, hashlib.sha1).digest()
        proof = bytes(a ^ b for a, b in zip(ckey, sig))
        return f"{final_wo},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, data):
        """data: the server-final message (None when the server sent none)"""
        if not data or self.auth_msg is None:
            return
        skey = hmac.new(self.salted, b"Server Key", hashlib.sha1).digest()
        ssig = base64.b64encode(hmac.new(skey, self.auth_msg, hashlib.sha1).digest()).decode()
        if data.decode() != f"v={ssig}":
            raise Fail("bad server signature")


class HtSha256None:
    """FAST (XEP-0484): HT-SHA-256-NONE with a token the server issued:
    the initial response is the user, NUL and HMAC-SHA-256(token,
    "Initiator"); the server's additional data must be HMAC(token,
    "Responder")."""
    name = "HT-SHA-256-NONE"

    def __init__(self, user, token):
        self.user = user
        self.token = token.encode()

    def initial(self):
        return self.user.encode() + b"\0" + hmac.new(self.token, b"Initiator", hashlib.sha256).digest()

    def step(self, challenge):
        raise Fail("HT-SHA-256-NONE: unexpected challenge")

    def verify(self, data):
        if data != hmac.new(self.token, b"Responder", hashlib.sha256).digest():
            raise Fail("HT-SHA-256-NONE: wrong Responder data")


def b64(data):
    return base64.b64encode(data).decode()


class Stream:
    """One client connection: raw socket, then TLS; top-level elements parsed
    with an ElementTree pull parser (restarted with each stream)."""

    def __init__(self, args, tls_session):
        self.args = args
        self.sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls_session = tls_session
        self.tls_reused = False
        self.h_in = 0   # stanzas received since enabled/resumed
        self.counting = False
        self.pending = []
        self.user = 0
        self.features = self.open_stream()

    def open_stream(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.pending = []
        self.send(f"<?xml version='1.0'?><stream:stream to='{self.args.domain}' xmlns='jabber:client' "
                  f"xmlns:stream='{NS_STREAM}' version='1.0'>")
        return self.next(f"{{{NS_STREAM}}}features")

    def send(self, s):
        self.sock.sendall(s.encode())

    def next(self, want=None):
        """The next top-level element (of name want, when given; stanzas in
        between are counted and otherwise skipped; <r/> is answered)."""
        while True:
            while self.pending:
                el = self.pending.pop(0)
                if DEBUG:
                    print(f"[{self.user}] {'h ' if self.counting else ''}{ET.tostring(el)[:300]!r}", file=sys.stderr)
                if el.tag in STANZAS and self.counting:
                    self.h_in = (self.h_in + 1) % 2**32
                if el.tag == f"{{{NS_SM}}}r":
                    self.send(f"<a xmlns='{NS_SM}' h='{self.h_in}'/>")
                    continue
                if el.tag == f"{{{NS_STREAM}}}error":
                    raise Fail("stream error: " + ",".join(c.tag.split("}")[-1] for c in el))
                if want is None or el.tag == want or (isinstance(want, tuple) and el.tag in want):
                    return el
            data = self.sock.recv(65536)
            if not data:
                raise Fail("connection closed by the server")
            self.parser.feed(data)
            for ev, el in self.parser.read_events():
                if ev == "start":
                    if self.depth == 0:
                        self.root = el
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.pending.append(el)
                        self.root.remove(el)   # the stream keeps none of them

    def starttls(self, ctx):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.next(f"{{{NS_TLS}}}proceed")
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.args.domain, session=self.tls_session)
        self.tls_reused = self.sock.session_reused
        return self.open_stream()

    def scram(self, features):
        """SASL1 SCRAM-SHA-1 and the stream restart; the new features"""
        mechs = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        if "SCRAM-SHA-1" not in mechs:
            raise Fail("no SCRAM-SHA-1 among " + ",".join(mechs))
        mech = ScramSha1(f"{self.args.prefix}{self.user}", self.args.password)
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{b64(mech.initial())}</auth>")
        ch = self.next((f"{{{NS_SASL}}}challenge", f"{{{NS_SASL}}}failure"))
        if ch.tag.endswith("failure"):
            raise Fail("SASL failure")
        self.send(f"<response xmlns='{NS_SASL}'>{b64(mech.step(base64.b64decode(ch.text or '')))}"
                  f"</response>")
        res = self.next((f"{{{NS_SASL}}}success", f"{{{NS_SASL}}}failure", f"{{{NS_SASL}}}challenge"))
        if res.tag.endswith("challenge"):   # the server's signature as a challenge
            self.send(f"<response xmlns='{NS_SASL}'/>")
            res = self.next((f"{{{NS_SASL}}}success", f"{{{NS_SASL}}}failure"))
        if res.tag.endswith("failure"):
            raise Fail("SASL failure")
        mech.verify(base64.b64decode(res.text) if res.text else None)
        return self.open_stream()

    def sasl2(self, features, mech, extra=""):
        """SASL2 (XEP-0388) with mech (e.g. ScramSha1) and extra children of
        <authenticate/> (an inline <resume/>, a Bind 2 request): returns the
        <success/>; the stream features that follow it are read into
        self.features (no stream restart)."""
        auth = features.find(f"{{{NS_SASL2}}}authentication")
        mechs = [] if auth is None else [m.text for m in auth.findall(f"{{{NS_SASL2}}}mechanism")]
        if mech.name not in mechs:
            raise Fail(f"no SASL2 {mech.name} among " + ",".join(mechs))
        self.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='{mech.name}'>"
                  f"<initial-response>{b64(mech.initial())}</initial-response>{extra}</authenticate>")
        want = (f"{{{NS_SASL2}}}challenge", f"{{{NS_SASL2}}}success", f"{{{NS_SASL2}}}failure")
        res = self.next(want)
        while res.tag.endswith("challenge"):
            self.send(f"<response xmlns='{NS_SASL2}'>{b64(mech.step(base64.b64decode(res.text or '')))}"
                      f"</response>")
            res = self.next(want)
        if res.tag.endswith("failure"):
            raise Fail("SASL2 failure: " + ",".join(c.tag.split("}")[-1] for c in res))
        data = res.findtext(f"{{{NS_SASL2}}}additional-data")
        mech.verify(base64.b64decode(data) if data else None)
        self.features = self.next(f"{{{NS_STREAM}}}features")
        return res

    def iq(self, body, id_):
        self.send(f"<iq type='{body[0]}' id='{id_}'>{body[1]}</iq>")
        while True:
            el = self.next(f"{{{NS_CLIENT}}}iq")
            if el.get("id") == id_:
                if el.get("type") != "result":
                    raise Fail(f"iq {id_}: {el.get('type')}")
                return el

    def sync(self):
        """<r/>, then wait for the server's <a/>"""
        self.send(f"<r xmlns='{NS_SM}'/>")
        self.next(f"{{{NS_SM}}}a")

    def drop(self):
        """abruptly: RST (SO_LINGER 0), no closing tag, no TLS close_notify
        (Python's ssl sends one only from unwrap()); returns the TLS session"""
        s = self.sock
        sess = s.session if isinstance(s, ssl.SSLSocket) else None
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()
        return sess
