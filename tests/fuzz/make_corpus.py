#!/usr/bin/python3
"""Write the seed corpus of the fuzz targets (tests/fuzz/corpus/TARGET/).

    /usr/bin/python3 tests/fuzz/make_corpus.py [TEST_FILE...]

Runs protocol tests of tests/integration (default: a handful that cover
logins, SASL, stanzas and XEP-0227) with a recorder loaded as a pytest
plugin: every byte the test clients (slixmpp and the raw-socket client)
send, every configuration the tests write and every XEP-0227 file parleyctl
exports or imports is kept.  From that it writes:

  fuzz-xml      each connection's bytes, with the points where the server
                restarts the stream marked (see below), behind the 4 control
                bytes of fuzz-xml
  fuzz-sasl     the SASL exchanges (mechanism byte, 2-byte lengths)
  fuzz-scram    the SCRAM exchanges (nonce rewritten to the fixed server
                nonce of the target), and exchanges with valid proofs
  fuzz-jid      the addresses found in the traffic
  fuzz-config   the test configurations, etc/parley.yml, quickstart's
  fuzz-xep0227  the exported documents
  fuzz-extauth  replies and requests of the external auth protocol
  fuzz-dialback s2s dialback exchanges written here, in the shapes
                test_s2s_rawpeer.py sends (the protocol tests' federation
                runs between two parleyd over TLS, which the target has not)

A client restarts its stream after STARTTLS and after SASL success; in
the recorded bytes a new stream header then follows.  fuzz-xml restarts
the parser after an element <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>
or <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/> in its input, as
c2s does after sending one, so the recorder puts one of those before each
later header.  Files are named by the SHA-1 of their content; inputs over
32 KiB are left out.  Run from the checkout after building it (the tests
need ./parleyd); needs python3-slixmpp and python3-pytest.
"""
import base64
import hashlib
import hmac
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))  # tests/fuzz/ -> the checkout
CORPUS = os.path.join(HERE, 'corpus')
MAX_INPUT = 32 * 1024
DEFAULT_TESTS = ['test_login.py', 'test_messages.py', 'test_roster.py', 'test_sasl2.py',
                 'test_scram_cb.py', 'test_xep0227.py', 'test_presence.py', 'test_bad_input.py',
                 'test_muc.py', 'test_vcard.py']

# ---- the recorder (loaded by pytest as the plugin "make_corpus") ----------

_record = {'conns': {}, 'configs': [], 'exports': []}


def _keep(obj, data):
    if isinstance(data, str):
        data = data.encode('utf-8')
    _record['conns'].setdefault(id(obj), (obj, bytearray()))[1].extend(data)


def pytest_configure(config):
    import parleytest
    import slixmpp.xmlstream.xmlstream as xs

    raw_send = parleytest.RawClient.send

    def send(self, data):
        _keep(self, data)
        return raw_send(self, data)
    parleytest.RawClient.send = send

    slix_send = xs.XMLStream.send_raw

    def send_raw(self, data):
        _keep(self, data)
        return slix_send(self, data)
    xs.XMLStream.send_raw = send_raw

    write_config = parleytest.Parleyd.write_config

    def keep_config(self):
        write_config(self)
        _record['configs'].append(self.config.read_bytes())
    parleytest.Parleyd.write_config = keep_config

    ctl = parleytest.Parleyd.ctl

    def keep_export(self, *args, **kw):
        if args and args[0] == 'import-xep0227' and len(args) > 1 and os.path.isfile(str(args[-1])):
            with open(str(args[-1]), 'rb') as fh:
                _record['exports'].append(fh.read())
        r = ctl(self, *args, **kw)
        if args and args[0] == 'export-xep0227' and len(args) > 1:
            path = str(args[-1])
            files = [path] if os.path.isfile(path) else \
                [os.path.join(path, f) for f in os.listdir(path) if f.endswith('.xml')] \
                if os.path.isdir(path) else []
            for f in files:
                with open(f, 'rb') as fh:
                    _record['exports'].append(fh.read())
        return r
    parleytest.Parleyd.ctl = keep_export


def pytest_sessionfinish(session, exitstatus):
    out = os.environ['MAKE_CORPUS_OUT']
    for i, (_, data) in enumerate(_record['conns'].values()):
        with open(os.path.join(out, 'conn-%d' % i), 'wb') as f:
            f.write(bytes(data))
    for kind in ('configs', 'exports'):
        for i, data in enumerate(_record[kind]):
            with open(os.path.join(out, '%s-%d' % (kind, i)), 'wb') as f:
                f.write(data)

# ---- writing the corpus ---------------------------------------------------------


def save(target, data):
    if len(data) > MAX_INPUT or not data:
        return
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), 'wb') as f:
        f.write(data)


HEADER = re.compile(rb'(<\?xml[^>]*\?>\s*)?<stream:stream\b')
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
SUCCESS = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"


def mark_restarts(data):
    """Put <proceed/> or <success/> before every stream header but the first."""
    out = bytearray()
    last = 0
    for n, m in enumerate(HEADER.finditer(data)):
        seg = data[last:m.start()]
        out += seg
        if n > 0:
            out += PROCEED if b'<starttls' in seg else SUCCESS
        last = m.start()
    out += data[last:]
    return bytes(out)


SASL_MSG = re.compile(rb"<(auth|response|authenticate|initial-response)\b([^>]*)>([^<]*)<")
MECH = re.compile(rb"mechanism=['\"]([A-Z0-9-]+)['\"]")
SASL_MECHS = {b'PLAIN': 0, b'SCRAM-SHA-1': 1, b'SCRAM-SHA-256': 2, b'SCRAM-SHA-512': 3, b'ANONYMOUS': 4}
HASH_BITS = {b'SCRAM-SHA-1': 0, b'SCRAM-SHA-256': 1, b'SCRAM-SHA-512': 2}
FUZZ_SNONCE = b'fuzzsnonce'


def sasl_exchanges(data):
    """[(mechanism, [decoded messages])] of one connection's bytes."""
    out = []
    for m in SASL_MSG.finditer(data):
        tag, attrs, text = m.groups()
        mech = MECH.search(attrs)
        if tag in (b'auth', b'authenticate') and mech:
            out.append((mech.group(1), []))
        if not out or tag == b'authenticate':
            continue
        try:
            msg = base64.b64decode(text.strip(), validate=True) if text.strip() not in (b'', b'=') else b''
        except ValueError:
            continue
        out[-1][1].append(msg)
    return out


def save_sasl(mech, msgs):
    base = mech[:-5] if mech.endswith(b'-PLUS') else mech
    if base in SASL_MECHS:
        save('fuzz-sasl', bytes([SASL_MECHS[base]]) +
             b''.join(len(m).to_bytes(2, 'big') + m for m in msgs[:4]))
    if base in HASH_BITS and msgs:
        ctl = HASH_BITS[base] | (4 | 8 if mech.endswith(b'-PLUS') else 0)
        first = msgs[0]
        cnonce = re.search(rb'(^|,)r=([^,]*)', first)
        final = msgs[1] if len(msgs) > 1 else b''
        if cnonce:
            final = re.sub(rb'(^|,)r=([^,]*)', lambda m: m.group(1) + b'r=' + cnonce.group(2) + FUZZ_SNONCE,
                           final, count=1)
        save('fuzz-scram', bytes([ctl]) + first + b'\0' + final)


JID_ATTR = re.compile(rb"\b(?:to|from|jid)=['\"]([^'\"]{1,300})['\"]")


def from_traffic(rec):
    for name in sorted(os.listdir(rec)):
        with open(os.path.join(rec, name), 'rb') as f:
            data = f.read()
        if name.startswith('conn-'):
            marked = mark_restarts(data)
            save('fuzz-xml', bytes([5, 63, 64, len(data) & 0xff]) + marked)
            for mech, msgs in sasl_exchanges(data):
                save_sasl(mech, msgs)
            for m in JID_ATTR.finditer(data):
                save('fuzz-jid', m.group(1).replace(b'&apos;', b"'").replace(b'&amp;', b'&'))
        elif name.startswith('configs-'):
            save('fuzz-config', data)
        elif name.startswith('exports-'):
            save('fuzz-xep0227', data)

# ---- seeds written here -------------------------------------------------------------------


def scram_proofs():
    """fuzz-scram inputs with valid proofs for the target's fixed user."""
    salt = base64.b64decode('QSXCR+Q6sek8bf92')
    for bits, name in ((0, 'sha1'), (1, 'sha256'), (2, 'sha512')):
        for plus in (False, True):
            gs2 = b'p=tls-exporter,,' if plus else b'n,,'
            bare = b'n=juliet,r=clientnonce01'
            first = gs2 + bare
            nonce = b'clientnonce01' + FUZZ_SNONCE
            it = 16
            server_first = b'r=' + nonce + b',s=' + base64.b64encode(salt) + b',i=' + str(it).encode()
            cbind = gs2 + (b'\x5a' * 32 if plus else b'')
            without_proof = b'c=' + base64.b64encode(cbind) + b',r=' + nonce
            for ssdp in (False, True):
                # with the XEP-0474 attribute the server-first message holds h=...: no valid
                # proof is written for it here
                if ssdp:
                    continue
                salted = hashlib.pbkdf2_hmac(name, b'pencil', salt, it)
                client_key = hmac.new(salted, b'Client Key', name).digest()
                stored = hashlib.new(name, client_key).digest()
                auth_msg = bare + b',' + server_first + b',' + without_proof
                sig = hmac.new(stored, auth_msg, name).digest()
                proof = bytes(a ^ b for a, b in zip(client_key, sig))
                final = without_proof + b',p=' + base64.b64encode(proof)
                ctl = bits | (4 | 8 if plus else 0)
                save('fuzz-scram', bytes([ctl]) + first + b'\0' + final)
                save('fuzz-sasl', bytes([bits + 1]) + len(first).to_bytes(2, 'big') + first)


def handmade():
    for s in [b'juliet@example.com', b'juliet@example.com/balcony', b'example.com', b'a@[::1]/r',
              b'1.2.3.4', b'\xc3\xa9l\xc3\xa8ve@\xc3\xa9cole.example/\xe2\x99\x9e', b'x@example.com.',
              b'room@conference.example/nick with space', b'a/b@c', b'@d', b'n@', b'd/']:
        save('fuzz-jid', s)
    for reply in [b'\x00\x02\x00\x01', b'\x00\x02\x00\x00', b'\x00\x02\x00\x01\x00\x02\x00\x00',
                  b'\x00\x02', b'\x00\x03\x00\x01\x00', b'\x00\x02\x00\x02']:
        save('fuzz-extauth', b'\x07' + reply)
    for req in [b'auth:juliet:example.com:pass:word', b'isuser:juliet:example.com',
                b'setpass:juliet:example.com:new', b'tryregister:a:b:c', b'removeuser:a:b',
                b'removeuser3:a:b:c']:
        save('fuzz-extauth', b'\x01' + req)
    save('fuzz-sasl', b'\x00\x00\x0f\x00juliet\x00pencil\x00\x00')
    save('fuzz-sasl', b'\x00\x00\x21juliet@fuzz.example\x00juliet\x00pencil')
    save('fuzz-sasl', b'\x04\x00\x05trace')
    for f in ('etc/parley.yml',):
        with open(os.path.join(TOP, f), 'rb') as fh:
            save('fuzz-config', fh.read())
    with open(os.path.join(TOP, 'scripts/quickstart.sh'), 'rb') as fh:
        qs = fh.read()
    m = re.search(rb'<<EOF\n(.*?)\nEOF\n', qs, re.S)
    if m:
        save('fuzz-config', m.group(1).replace(b'$DOMAIN', b'localhost'))


DB_NS = (b"xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
         b"xmlns:db='jabber:server:dialback'")


def db_header(frm, to, sid=None, version=b"1.0", ns=DB_NS):
    return (b"<?xml version='1.0'?><stream:stream " + ns + b" from='" + frm + b"' to='" + to + b"'" +
            (b" id='" + sid + b"'" if sid else b"") + (b" version='" + version + b"'" if version else b"") +
            b">")


def dialback_seeds():
    """fuzz-dialback: flags byte, the peer's first part, NUL, the
    authoritative server's part, NUL, the peer's second part."""
    r, c, conf, o = b'remote.example', b'chat.example', b'conf.chat.example', b'other.example'
    key = b'%064x' % 42
    hin = db_header(r, c)
    hout = db_header(r, c, b'auth1')
    feat = b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"
    feat_tls = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                b"</stream:features>")
    feat_ext = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL"
                b"</mechanism></mechanisms><bidi xmlns='urn:xmpp:features:bidi'/>" + feat[17:])

    def result(frm, to, text=key, typ=None):
        t = b" type='" + typ + b"'" if typ else b""
        if text is None:
            return b"<db:result from='" + frm + b"' to='" + to + b"'" + t + b"/>"
        return b"<db:result from='" + frm + b"' to='" + to + b"'" + t + b">" + text + b"</db:result>"

    def verify(frm, to, sid=b'SID', text=None, typ=None):
        t = b" type='" + typ + b"'" if typ else b""
        i = b" id='" + sid + b"'" if sid else b""
        if text is None:
            return b"<db:verify from='" + frm + b"' to='" + to + b"'" + i + t + b"/>"
        return b"<db:verify from='" + frm + b"' to='" + to + b"'" + i + t + b">" + text + b"</db:verify>"

    msg = (b"<message from='juliet@remote.example/balcony' to='romeo@chat.example' type='chat'>"
           b"<body>hi</body></message>")
    pres = b"<presence from='juliet@remote.example/balcony' to='room@conf.chat.example/juliet'/>"
    iq = (b"<iq from='remote.example' to='chat.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/>"
          b"</iq>")
    answer = hout + feat + verify(r, c, typ=b'valid') + result(r, c, None, b'valid')
    seeds = [
        # a dialback that succeeds, stanzas, a second domain pair on the stream
        (0, hin + result(r, c), answer + verify(r, conf, typ=b'valid') + result(r, conf, None, b'valid'),
         msg + iq + result(r, conf) + pres + b'</stream:stream>'),
        # the authoritative server says no; stanzas then close the stream
        (0, hin + result(r, c), hout + feat + verify(r, c, typ=b'invalid') + result(r, c, None, b'invalid'),
         msg),
        # an answer for another id, an error, the stream closed under a verification
        (0, hin + result(r, c), hout + feat + verify(r, c, b'other', typ=b'valid') + b'</stream:stream>',
         msg),
        # the authoritative role: a good key, a bad one, one without an id
        (0, hin + verify(r, c, text=b'KEY') + verify(r, c, text=key) + verify(r, c, None, key), b'',
         verify(o, c, text=b'KEY') + verify(r, b'elsewhere.example', text=b'KEY')),
        # dialback off; STARTTLS required but not offered; one pending at most
        (1, hin + result(r, c), b'', b''),
        (2, hin + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", feat_tls, b''),
        (4, hin + result(r, c) + result(o, c), answer, msg),
        # the authoritative server offers STARTTLS, then EXTERNAL (no certificate here)
        (0, hin + result(r, c), hout + feat_tls + b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", b''),
        (0, hin + result(r, c), hout + feat_ext + b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" +
         verify(r, c, typ=b'valid') + result(r, c, None, b'valid'), msg),
        # a stream error from the authoritative server; a header without id, of version 0
        (0, hin + result(r, c), hout + b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:"
         b"xmpp-streams'/></stream:error>", b''),
        (0, hin + result(r, c), db_header(r, c) + feat, b''),
        (0, hin + result(r, c), db_header(r, c, b'x', b'0.9') + feat, b''),
        # the peer: stanzas before authentication, SASL EXTERNAL without a
        # certificate, bidi, a stream error, domains not allowed or not served
        (0, hin + msg, b'', b''),
        (0, hin + b"<bidi xmlns='urn:xmpp:bidi'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
         b"mechanism='EXTERNAL'>=</auth>" + result(b'denied.example', c) + result(r, b'unknown.example'),
         b'', b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"),
        (0, db_header(r, b'unknown.example'), b'', b''),
        (0, db_header(r, c, None, None), b'', b''),
        (0, db_header(r, c, ns=DB_NS.replace(b'jabber:server', b'jabber:client', 1)), b'', b''),
        (0, hin + result(r, c, b''), b'', b''),
        # after success: malformed and missing addresses, unserved and unvalidated domains
        (0, hin + result(r, c), answer,
         b"<message from='juliet@remote.example' to='a@@chat.example'/><message to='romeo@chat.example'/>"),
        (0, hin + result(r, c), answer, b"<message from='juliet@remote.example' to='romeo@elsewhere.example'/>"),
        (0, hin + result(r, c), answer, b"<message from='juliet@remote.example' to='romeo@conf.chat.example'/>"),
        (0, hin + result(r, c), answer, b"<message from='eve@other.example' to='romeo@chat.example'/>"),
        (0, hin + result(r, c), answer, b"<foo xmlns='urn:example'/>"),
        # an error to a stanza of ours goes back over the outgoing stream
        (0, hin + result(r, c), answer,
         b"<iq from='remote.example' to='chat.example' id='x' type='set'><bad xmlns='urn:example'/></iq>"),
    ]
    for flags, in1, out, in2 in seeds:
        save('fuzz-dialback', bytes([flags]) + in1 + b'\0' + out + b'\0' + in2)


def main():
    tests = sys.argv[1:] or DEFAULT_TESTS
    rec = tempfile.mkdtemp(prefix='parley-corpus-')
    try:
        env = dict(os.environ, MAKE_CORPUS_OUT=rec, PARLEY_BUILDDIR=os.environ.get('PARLEY_BUILDDIR', TOP),
                   PARLEY_SRCDIR=os.environ.get('PARLEY_SRCDIR', TOP),
                   PARLEY_SQL_DIR=os.environ.get('PARLEY_SQL_DIR', os.path.join(TOP, 'sql')),
                   PYTHONPATH=os.pathsep.join([HERE, os.path.join(TOP, 'tests', 'integration'),
                                               os.environ.get('PYTHONPATH', '')]))
        paths = [t if os.sep in t else os.path.join(TOP, 'tests', 'integration', t) for t in tests]
        cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'make_corpus'] + paths
        rc = os.spawnvpe(os.P_WAIT, cmd[0], cmd, env)
        if rc != 0:
            print('make-corpus: the tests failed (exit %d); keeping what was recorded' % rc, file=sys.stderr)
        from_traffic(rec)
    finally:
        shutil.rmtree(rec, ignore_errors=True)
    scram_proofs()
    handmade()
    dialback_seeds()
    for t in sorted(os.listdir(CORPUS)):
        print('%-14s %4d inputs' % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == '__main__':
    main()
