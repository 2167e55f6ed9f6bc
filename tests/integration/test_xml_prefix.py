"""An element in the XML namespace (<xml:x/>: the xml prefix needs no
declaration) inside a stanza reaches the recipient as well-formed XML, live
and from the offline store.  It used to be written with
xmlns='http://www.w3.org/XML/1998/namespace', which no XML parser accepts:
the recipient's stream broke, and the stored copy did not read back (found
by tests/fuzz/fuzz-xml)."""
from parleytest import HOST, RawClient, tostr

NS_XML = 'http://www.w3.org/XML/1998/namespace'
PAYLOAD = "<xml:x><y xmlns='urn:example:y'>z</y></xml:x>"


def _login(server, user, presence=True):
    c = RawClient(server.port, timeout=15)
    c.login(user, server.password(user), presence=presence)
    return c


def _check(msg):
    x = msg.find('{%s}x' % NS_XML)
    assert x is not None, tostr(msg)
    assert x.findtext('{urn:example:y}y') == 'z', tostr(msg)


def test_live(server):
    alice = _login(server, 'alice')
    bob = _login(server, 'bob')
    try:
        alice.send("<message to='%s' type='chat'><body>live</body>%s</message>" % (bob.jid, PAYLOAD))
        _check(bob.wait_message('live'))
        # the stream still works
        alice.send("<message to='%s' type='chat'><body>after</body></message>" % bob.jid)
        bob.wait_message('after')
    finally:
        alice.close()
        bob.close()


def test_offline(server):
    alice = _login(server, 'alice')
    try:
        alice.send("<message to='erin@%s' type='chat'><body>stored</body>%s</message>" % (HOST, PAYLOAD))
        # a round trip: the message was handled before erin logs in
        alice.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    finally:
        alice.close()
    # the initial presence brings the stored message (login's own round
    # trip would read past it)
    erin = _login(server, 'erin', presence=False)
    erin.send('<presence/>')
    try:
        _check(erin.wait_message('stored'))
    finally:
        erin.close()
