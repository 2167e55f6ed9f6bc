"""Per-account abuse limits (module limits): the stanza rate, subscription
requests per hour and messages to non-contacts per minute.  Past a limit a
stanza gets <policy-violation/> and is dropped; other accounts go on
working, and the limited account recovers as its bucket refills."""
import base64
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, q, stanza_error, tostr, unique

NS_ROSTER = 'jabber:iq:roster'
LIMITS = ('  limits: { stanza_rate: 10, stanza_burst: 40, subscriptions_per_hour: 3, '
          'non_contacts_per_minute: 3 }\n')
EXTRA_USERS = ['frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'trent', 'peggy']


class LimitedParleyd(parleytest.Parleyd):
    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        assert 'modules:\n  disco: {}\n' in text, 'the harness configuration changed'
        text = text.replace('modules:\n  disco: {}\n', 'modules:\n  disco: {}\n' + LIMITS, 1)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def limited(tmp_path_factory):
    users = dict(parleytest.USERS)
    for u in EXTRA_USERS:
        users[(u, HOST)] = u + '-secret'
    srv = LimitedParleyd(tmp_path_factory.mktemp('limits'), users=users)
    srv.start_with_users()
    yield srv
    srv.finish()


def client(srv, user):
    c = RawClient(srv.port, timeout=10)
    c.login(user, srv.password(user), resource=unique('lim-'))
    return c


def test_stanza_rate_slows_the_account_down(limited):
    """Past the rate nothing is refused or lost: the account's connection
    is read more slowly until its debt is paid back."""
    w = parleytest.Witness(limited)
    c = client(limited, 'alice')
    ids = ['p%d' % i for i in range(80)]
    c.send(''.join("<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % (i, HOST)
                   for i in ids))
    start = time.monotonic()
    for i in ids:
        r = c.wait_iq(i, timeout=30)
        assert r.get('type') == 'result', tostr(r)
    # 83 stanzas (with the login's) from a bucket of 40 refilled 10 a
    # second: 4.3 s of debt, during which the connection is not read
    r = c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST, timeout=60)
    waited = time.monotonic() - start
    assert r.get('type') == 'result', tostr(r)
    assert waited >= 3.0, waited
    assert waited < 40, waited
    assert not c.closed
    # other accounts were not held up meanwhile (checked after: their
    # messages went through while alice waited)
    w.check()
    c.close()
    w.close()


def test_subscription_requests_per_hour(limited):
    c = client(limited, 'bob')
    targets = ['%s@%s' % (u, HOST) for u in ('frank', 'grace', 'heidi', 'ivan', 'judy')]
    for t in targets:
        c.send("<presence to='%s' type='subscribe'/>" % t)
    refused = set()
    deadline = time.monotonic() + 10
    while len(refused) < 2 and time.monotonic() < deadline:
        try:
            el = c.next(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        assert el is not None, 'stream closed'
        if el.tag == q(NS_CLIENT, 'presence') and el.get('type') == 'error':
            assert stanza_error(el) == 'policy-violation', tostr(el)
            refused.add(el.get('from'))
    # the first three went through, the fourth and fifth were refused
    assert refused == set(targets[3:]), refused
    # the others were not: frank has bob's request
    f = client(limited, 'frank')
    r = f.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
    items = {i.get('jid'): i for i in r.iter('{%s}item' % NS_ROSTER)}
    assert 'bob@%s' % HOST in items or any(
        e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe' for e in f.received), \
        tostr(r)
    # answering a request is not a request: bob can still approve others
    c.send("<presence to='peggy@%s' type='subscribed'/>" % HOST)
    r = c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert r.get('type') == 'result', tostr(r)
    assert not any(stanza_error(e) == 'policy-violation' and e.get('from') == 'peggy@%s' % HOST
                   for e in c.received)
    f.close()
    c.close()


def test_non_contacts_per_minute(limited):
    m = client(limited, 'mallory')
    t = client(limited, 'trent')
    # the roster read at login is done once a roster get came back (one
    # user's storage jobs keep their order)
    m.iq('get', "<query xmlns='%s'/>" % NS_ROSTER)
    # a conversation with one stranger is not limited
    bodies = [unique('stranger-%d-' % i) for i in range(10)]
    for b in bodies:
        m.send("<message to='%s' type='chat'><body>%s</body></message>" % (t.jid, b))
    for b in bodies:
        t.wait_message(b)
    # trent was the first stranger; two more go, the fourth and fifth not
    others = ['%s@%s' % (u, HOST) for u in ('ivan', 'judy', 'grace', 'heidi')]
    for o in others:
        m.send("<message to='%s' type='chat'><body>hello %s</body></message>" % (o, o))
    refused = set()
    deadline = time.monotonic() + 10
    while len(refused) < 2 and time.monotonic() < deadline:
        try:
            el = m.next(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        assert el is not None, 'stream closed'
        if el.tag == q(NS_CLIENT, 'message') and el.get('type') == 'error':
            assert stanza_error(el) == 'policy-violation', tostr(el)
            refused.add(el.get('from'))
    assert refused == set(others[2:]), refused
    # trent, already messaged this minute, still gets messages
    again = unique('again-')
    m.send("<message to='%s' type='chat'><body>%s</body></message>" % (t.jid, again))
    t.wait_message(again)
    # a contact is not a stranger: once peggy is in the roster, messages go
    p = client(limited, 'peggy')
    r = m.iq('set', "<query xmlns='%s'><item jid='peggy@%s'/></query>" % (NS_ROSTER, HOST))
    assert r.get('type') == 'result', tostr(r)
    body = unique('contact-')
    m.send("<message to='%s' type='chat'><body>%s</body></message>" % (p.jid, body))
    p.wait_message(body)
    p.close()
    # and messages to one's own account never count
    own = unique('self-')
    m.send("<message to='mallory@%s/nowhere' type='chat'><body>%s</body></message>" % (HOST, own))
    r = m.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert r.get('type') == 'result'
    assert not any(stanza_error(e) == 'policy-violation' and e.findtext(q(NS_CLIENT, 'body')) == own
                   for e in m.received)
    m.close()
    t.close()


def test_over_the_rate_with_a_detached_session(limited):
    """An avatar change sends the presence of each of the user's available
    sessions again, a detached stream-management session's too, through
    the same hook as what the user sends.  Over the stanza rate, the
    slowing down must pass over that session, which has no connection."""
    from test_sm import SMClient
    w = parleytest.Witness(limited)
    gone = SMClient(limited, timeout=10)
    gone.sm_login('heidi')   # resumable, with presence
    gone.kill()
    time.sleep(0.5)          # the server notices the reset and detaches the session
    c = client(limited, 'heidi')
    c.send('<presence/>')
    ids = ['d%d' % i for i in range(60)]
    c.send(''.join("<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % (i, HOST)
                   for i in ids))
    photo = base64.b64encode(bytes(range(256))).decode()
    c.send("<iq type='set' id='vc'><vCard xmlns='vcard-temp'><FN>Heidi</FN><PHOTO><TYPE>image/png"
           "</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard></iq>" % photo)
    for i in ids:
        assert c.wait_iq(i, timeout=60).get('type') == 'result'
    r = c.wait_iq('vc', timeout=60)
    assert r.get('type') == 'result', tostr(r)
    assert limited.proc.poll() is None, 'parleyd exited'
    w.check()
    c.close()
    w.close()
