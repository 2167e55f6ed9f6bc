"""TLS per virtual host: each host's certificate is chosen by the name the
client asks for (SNI), on direct TLS and after STARTTLS; a client without
SNI gets the default certificate; TLS 1.1 and older are refused."""
import socket
import ssl
import subprocess

import pytest

import parleytest
from parleytest import HOST, OTHER, RawClient, stream_header


class TwoCertParleyd(parleytest.Parleyd):
    """other.local has a certificate of its own (CN and SAN other.local only)."""

    def write_cert(self):
        super().write_cert()
        if (self.dir / 'other-cert.pem').exists():
            return
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + OTHER, '-addext', 'subjectAltName=DNS:' + OTHER,
             '-keyout', str(self.dir / 'other-key.pem'), '-out', str(self.dir / 'other-cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)

    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        old = '  %s: {}\n' % OTHER
        assert old in text, 'the harness configuration changed'
        text = text.replace(old, '  %s:\n    tls: { certificate: other-cert.pem, key: other-key.pem }\n' % OTHER)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def two(tmp_path_factory):
    srv = TwoCertParleyd(tmp_path_factory.mktemp('tls'))
    srv.start()
    srv.create_users()
    yield srv
    srv.finish()


def _peer_cert(sock):
    der = sock.getpeercert(binary_form=True)
    assert der, 'no certificate'
    return der


def _direct(port, sni):
    ctx = parleytest.tls_context()
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    return ctx.wrap_socket(s, server_hostname=sni)


@pytest.mark.parametrize('sni, expect, other', [(HOST, HOST, OTHER), (OTHER, OTHER, HOST)])
def test_direct_tls_certificate_by_sni(two, sni, expect, other):
    t = _direct(two.tls_port, sni)
    try:
        der = _peer_cert(t)
        assert expect.encode() in der
        if expect == OTHER:
            assert HOST.encode() not in der, 'the default certificate was served for %s' % sni
    finally:
        t.close()


def test_starttls_certificate_by_sni(two):
    c = RawClient(two.port, host=OTHER)
    try:
        c.open(to=OTHER)
        c.starttls()
        der = _peer_cert(c.sock)
        assert OTHER.encode() in der and HOST.encode() not in der
    finally:
        c.close()


def test_login_on_the_host_with_its_own_certificate(two):
    c = RawClient(two.tls_port, direct_tls=True, host=OTHER)
    try:
        jid = c.login('dave', two.password('dave', OTHER), resource='sni')
        assert jid == 'dave@%s/sni' % OTHER
    finally:
        c.close()


def test_no_sni_gets_a_certificate(two):
    ctx = parleytest.tls_context()
    s = socket.create_connection(('127.0.0.1', two.tls_port), timeout=5)
    t = ctx.wrap_socket(s)          # no server_hostname: no SNI
    try:
        assert _peer_cert(t)
        t.sendall(stream_header().encode())
        assert b'stream:stream' in t.recv(4096)
    finally:
        t.close()


def test_old_tls_versions_are_refused(two):
    """A client that offers at most TLS 1.1 gets the server's protocol_version
    alert (the client's own security level is lowered so it really offers
    1.1: the failure must come from the server)."""
    import warnings
    ctx = parleytest.tls_context()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError) as e:
            pytest.skip('this OpenSSL cannot offer TLS 1.1: %s' % e)
    s = socket.create_connection(('127.0.0.1', two.tls_port), timeout=5)
    try:
        with pytest.raises(ssl.SSLError) as err:
            ctx.wrap_socket(s, server_hostname=HOST).close()
        assert 'protocol version' in str(err.value).lower() or \
            'unsupported protocol' in str(err.value).lower(), str(err.value)
        assert 'no protocols available' not in str(err.value).lower(), str(err.value)
    finally:
        s.close()


def _starttls_session(port, host, ctx, session=None):
    """STARTTLS with ctx (offering session); returns the TLS socket after
    the stream features that follow, when the TLS 1.3 ticket has come."""
    c = RawClient(port, host=host)
    c.open()
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    c.wait_for(lambda e: e.tag.endswith('}proceed'), what='proceed')
    c.sock = ctx.wrap_socket(c.sock, server_hostname=host, session=session)
    c.sock.settimeout(c.timeout)
    c.tls = True
    c.open()
    return c


@pytest.mark.parametrize('host', [HOST, OTHER])
def test_tls13_sessions_resume(two, host):
    """A client that comes back offers its TLS 1.3 ticket and skips the full
    handshake, on either certificate; it can still log in."""
    ctx = parleytest.tls_context()
    first = _starttls_session(two.port, host, ctx)
    assert first.sock.version() == 'TLSv1.3'
    session = first.sock.session
    assert session is not None and session.has_ticket, 'no ticket was issued'
    first.close()
    again = _starttls_session(two.port, host, ctx, session=session)
    try:
        assert again.sock.session_reused, 'the ticket was not accepted'
        assert 'PLAIN' in again.mechanisms()
        user = 'alice' if host == HOST else 'dave'
        el = again.auth_plain(user, two.password(user, host))
        assert el.tag.endswith('}success'), parleytest.tostr(el)
    finally:
        again.close()


def test_tls12_sessions_are_not_resumed(two):
    """TLS 1.2 sessions are never resumed (tls-unique would be unsafe)."""
    ctx = parleytest.tls_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    first = _starttls_session(two.port, HOST, ctx)
    assert first.sock.version() == 'TLSv1.2'
    session = first.sock.session
    first.close()
    again = _starttls_session(two.port, HOST, ctx, session=session)
    try:
        assert not again.sock.session_reused
    finally:
        again.close()
