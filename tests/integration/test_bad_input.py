"""Bad input: each case gets the stream error (or stanza error) RFC 6120 asks
for, the offending connection is closed, and two users who were connected
before still exchange a message afterwards (the witness)."""
import time

import pytest

from parleytest import HOST, NS_CLIENT, NS_PING, NS_STREAM, RawClient, q, stanza_error, stream_header, tostr


def _logged_in(server, user='alice', resource=None):
    c = RawClient(server.port)
    c.login(user, server.password(user), resource=resource, presence=False)
    return c


def _assert_stream_error(c, condition, also=()):
    got = c.stream_error(timeout=10)
    assert got == condition or got in also, 'expected <%s/>, got %s; before it: %s' % (
        condition, got, [tostr(e) for e in c.received[-5:]])
    assert c.wait_closed(timeout=10), 'server did not close the connection after the stream error'


def test_malformed_xml_after_login(server, witness):
    c = _logged_in(server)
    try:
        c.send("<message to='bob@%s'><body>oops</message>" % HOST)
        _assert_stream_error(c, 'not-well-formed')
    finally:
        c.close()
    witness.check()


def test_malformed_xml_at_stream_start(server, witness):
    c = RawClient(server.port)
    try:
        c.send(stream_header() + '<<<>>>')
        _assert_stream_error(c, 'not-well-formed')
    finally:
        c.close()
    witness.check()


def test_invalid_utf8_not_well_formed(server, witness):
    c = _logged_in(server)
    try:
        c.send(b"<message to='bob@test.local'><body>\xff\xfe\xc3</body></message>")
        _assert_stream_error(c, 'not-well-formed')
    finally:
        c.close()
    witness.check()


def test_undefined_entity_reference(server, witness):
    c = _logged_in(server)
    try:
        c.send("<message to='bob@%s'><body>&boom;</body></message>" % HOST)
        _assert_stream_error(c, 'not-well-formed', also=('restricted-xml',))
    finally:
        c.close()
    witness.check()


def test_oversized_stanza_policy_violation(server, witness):
    c = _logged_in(server)
    try:
        big = 'x' * (70 * 1024)        # the test config sets max_stanza_size: 64K
        c.send_slowly("<message to='bob@%s' type='chat'><body>%s</body></message>" % (HOST, big))
        _assert_stream_error(c, 'policy-violation')
    finally:
        c.close()
    witness.check()


def test_oversized_unfinished_stanza_policy_violation(server, witness):
    """The limit holds while the stanza is still arriving (no end tag yet)."""
    c = _logged_in(server)
    try:
        c.send("<message to='bob@%s' type='chat'><body>" % HOST)
        c.send_slowly('y' * (160 * 1024))
        _assert_stream_error(c, 'policy-violation')
    finally:
        c.close()
    witness.check()


def test_too_deep_policy_violation(server, witness):
    c = _logged_in(server)
    try:
        depth = 200                    # the default max_depth is 64
        c.send("<message to='bob@%s'>" % HOST + '<a>' * depth + '</a>' * depth + '</message>')
        _assert_stream_error(c, 'policy-violation')
    finally:
        c.close()
    witness.check()


def test_too_many_attributes_policy_violation(server, witness):
    c = _logged_in(server)
    try:
        attrs = ' '.join("a%d='x'" % i for i in range(200))   # the default max_attrs is 64
        c.send("<message to='bob@%s' %s><body>hi</body></message>" % (HOST, attrs))
        _assert_stream_error(c, 'policy-violation')
    finally:
        c.close()
    witness.check()


def test_doctype_restricted_xml(server, witness):
    c = RawClient(server.port)
    try:
        c.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'boom'>]>"
               + stream_header(decl=False))
        _assert_stream_error(c, 'restricted-xml')
    finally:
        c.close()
    witness.check()


def test_entity_declaration_after_starttls_restricted_xml(server, witness):
    """A DTD with an internal entity on the stream restarted after TLS."""
    c = RawClient(server.port)
    try:
        c.open()
        c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        c.wait_for(lambda e: e.tag.endswith('}proceed'), what='proceed')
        c._wrap()
        c._reset_parser()
        c.send("<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]>"
               + stream_header(decl=False) + '<message>&lol2;</message>')
        _assert_stream_error(c, 'restricted-xml')
    finally:
        c.close()
    witness.check()


@pytest.mark.parametrize('what,data', [
    ('comment', '<!-- a comment -->'),
    ('processing instruction', "<?evil instruction='1'?>"),
])
def test_comment_and_pi_restricted_xml(server, witness, what, data):
    c = _logged_in(server)
    try:
        c.send(data)
        _assert_stream_error(c, 'restricted-xml')
    finally:
        c.close()
    witness.check()


@pytest.mark.parametrize('bad_jid', ['a@b@c', 'user@bad domain.local', '@' + HOST, 'user@'])
def test_bad_to_jid_malformed(server, witness, bad_jid):
    c = _logged_in(server)
    try:
        el = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=bad_jid)
        assert stanza_error(el) == 'jid-malformed', tostr(el)
        # the stream is still usable
        el = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()
    witness.check()


def test_bad_to_jid_on_message(server, witness):
    c = _logged_in(server)
    try:
        c.send("<message to='a@b@c' id='badmsg' type='chat'><body>x</body></message>")
        el = c.wait_for(lambda e: e.get('id') == 'badmsg', what='message error')
        assert stanza_error(el) == 'jid-malformed', tostr(el)
    finally:
        c.close()
    witness.check()


@pytest.mark.parametrize('ns,stream_ns', [
    ('urn:example:not-jabber-client', NS_STREAM),
    ('jabber:client', 'http://example.com/not-streams'),
])
def test_invalid_namespace(server, witness, ns, stream_ns):
    c = RawClient(server.port)
    try:
        c.send(stream_header(ns=ns, stream_ns=stream_ns))
        _assert_stream_error(c, 'invalid-namespace')
    finally:
        c.close()
    witness.check()


@pytest.mark.parametrize('encoding', ['ISO-8859-1', 'UTF-16'])
def test_declared_encoding_other_than_utf8(server, witness, encoding):
    """XMPP is UTF-8 only: a declaration of another encoding is a stream
    error (RFC 6120 §11.6), not read as UTF-8 regardless."""
    c = RawClient(server.port)
    try:
        c.send("<?xml version='1.0' encoding='%s'?>" % encoding + stream_header(decl=False))
        _assert_stream_error(c, 'unsupported-encoding')
    finally:
        c.close()
    witness.check()


def test_unsupported_stanza_type(server, witness):
    c = _logged_in(server)
    try:
        c.send("<frobnicate xmlns='jabber:client'/>")
        _assert_stream_error(c, 'unsupported-stanza-type')
    finally:
        c.close()
    witness.check()


def test_stanza_in_another_namespace(server, witness):
    """A <message/> that declares another default namespace is no stanza
    of the stream (RFC 6120 §4.9.3.24): a stream error, and nothing
    reaches its addressee."""
    bob = _logged_in(server, 'bob')
    c = _logged_in(server)
    try:
        c.send("<message xmlns='urn:example:other' to='%s' type='chat'><body>foreign</body></message>"
               % bob.jid)
        _assert_stream_error(c, 'unsupported-stanza-type')
    finally:
        c.close()
    c = _logged_in(server)
    try:
        c.send("<message to='%s' type='chat'><body>after</body></message>" % bob.jid)
        m = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message'), what='a message')
        assert m.findtext(q(NS_CLIENT, 'body')) == 'after', tostr(m)
    finally:
        c.close()
        bob.close()
    witness.check()


def test_whitespace_keepalive_accepted(server, witness):
    c = _logged_in(server)
    try:
        for _ in range(5):
            c.send(' \n\t ')
            time.sleep(0.05)
        el = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert el.get('type') == 'result', tostr(el)
        c.send('\n')
        el = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert el.get('type') == 'result', tostr(el)
        assert not c.closed
    finally:
        c.close()
    witness.check()


def test_client_closes_stream_cleanly(server, witness):
    c = _logged_in(server)
    c.send('</stream:stream>')
    assert c.wait_closed(timeout=10), 'server did not close after </stream:stream>'
    c.close()
    witness.check()
