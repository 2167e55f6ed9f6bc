"""The server's own texts in the client's language (lib/i18n.h): stanza
error <text/> and ad-hoc forms follow the stanza's xml:lang, else the
stream header's (RFC 6120 §4.7.4), else English, and say which language
they are in.  Raw sockets, so the exact xml:lang attributes are seen."""
import pytest

import parleytest
from parleytest import HOST, RawClient, q, stream_header, unique

NS_CLIENT = 'jabber:client'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_COMMANDS = 'http://jabber.org/protocol/commands'
NS_DATA = 'jabber:x:data'
NS_REGISTER = 'jabber:iq:register'
NS_SEARCH = 'jabber:iq:search'
XML_LANG = '{http://www.w3.org/XML/1998/namespace}lang'
ADMIN = 'http://jabber.org/protocol/admin#'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    s = parleytest.Parleyd(tmp_path_factory.mktemp('i18n'))
    s.env['PARLEY_LOCALE_DIR'] = str(parleytest.builddir() / 'po')
    s.enable_module('vjud')
    s.start_with_users()
    yield s
    s.finish()


class LangClient(RawClient):
    """A RawClient whose stream headers carry xml:lang (None: none)."""

    def __init__(self, port, lang):
        super().__init__(port)
        self.lang = lang

    def open(self, to=None, **kw):
        self._reset_parser()
        header = stream_header(to or self.host, **kw)
        if self.lang is not None:
            header = header[:-1] + " xml:lang='%s'>" % self.lang
        self.send(header)
        self.features = self.wait_for(lambda e: e.tag == q(parleytest.NS_STREAM, 'features'),
                                      what='stream features')
        return self.features


def connect(server, user, lang):
    c = LangClient(server.port, lang)
    c.login(user, server.password(user), resource=unique('i18n'))
    return c


def unknown_command(c, iq_lang=None, cmd_lang=None):
    """An ad-hoc execute of a node that does not exist: <item-not-found/>
    with a text.  Returns the <text/> element."""
    iq_id = unique('cmd')
    il = " xml:lang='%s'" % iq_lang if iq_lang else ''
    cl = " xml:lang='%s'" % cmd_lang if cmd_lang else ''
    c.send("<iq type='set' id='%s' to='%s'%s><command xmlns='%s' node='no-such-node-%s'"
           " action='execute'%s/></iq>" % (iq_id, HOST, il, NS_COMMANDS, iq_id, cl))
    el = c.wait_iq(iq_id)
    assert el.get('type') == 'error', parleytest.tostr(el)
    err = el.find(q(NS_CLIENT, 'error'))
    assert err.find(q(NS_STANZAS, 'item-not-found')) is not None, parleytest.tostr(el)
    text = err.find(q(NS_STANZAS, 'text'))
    assert text is not None, parleytest.tostr(el)
    return text


def add_user_form(c, iq_lang=None):
    """The first stage of add-user (alice is an admin): the <command/>."""
    iq_id = unique('add')
    il = " xml:lang='%s'" % iq_lang if iq_lang else ''
    c.send("<iq type='set' id='%s' to='%s'%s><command xmlns='%s' node='%sadd-user'"
           " action='execute'/></iq>" % (iq_id, HOST, il, NS_COMMANDS, ADMIN))
    el = c.wait_iq(iq_id)
    assert el.get('type') == 'result', parleytest.tostr(el)
    return el.find(q(NS_COMMANDS, 'command'))


def title_and_labels(cmd):
    x = cmd.find(q(NS_DATA, 'x'))
    labels = {f.get('var'): f.get('label') for f in x.findall(q(NS_DATA, 'field'))}
    return x.findtext(q(NS_DATA, 'title')), x.findtext(q(NS_DATA, 'instructions')), labels


def test_german_stream_gets_german_error_text(server):
    with connect(server, 'bob', 'de') as c:
        t = unknown_command(c)
        assert t.text == 'diesen Befehl gibt es nicht'
        assert t.get(XML_LANG) == 'de'
        # a regional tag falls back to the language
    with connect(server, 'bob', 'de-AT') as c:
        t = unknown_command(c)
        assert (t.text, t.get(XML_LANG)) == ('diesen Befehl gibt es nicht', 'de')


@pytest.mark.parametrize('lang', ['en', None, 'fr'])
def test_english_or_unknown_stream_gets_english(server, lang):
    with connect(server, 'bob', lang) as c:
        t = unknown_command(c)
        assert (t.text, t.get(XML_LANG)) == ('no such command', 'en')


def test_stanza_lang_overrides_stream_lang(server):
    with connect(server, 'bob', 'en') as c:
        t = unknown_command(c, iq_lang='de')
        assert (t.text, t.get(XML_LANG)) == ('diesen Befehl gibt es nicht', 'de')
    with connect(server, 'bob', 'de') as c:
        t = unknown_command(c, iq_lang='en')
        assert (t.text, t.get(XML_LANG)) == ('no such command', 'en')


def test_error_built_by_the_stream_itself(server):
    """c2s's own check of an iq without a type, before any module."""
    with connect(server, 'bob', 'de') as c:
        iq_id = unique('bad')
        c.send("<iq id='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % iq_id)
        el = c.wait_for(lambda e: e.get('id') == iq_id, what='error')
        t = el.find('%s/%s' % (q(NS_CLIENT, 'error'), q(NS_STANZAS, 'text')))
        assert (t.text, t.get(XML_LANG)) == ('ein iq braucht eine id und einen gültigen type', 'de')


def test_adhoc_form_in_german(server):
    with connect(server, 'alice', 'de') as c:
        cmd = add_user_form(c)
        assert cmd.get(XML_LANG) == 'de'
        title, instructions, labels = title_and_labels(cmd)
        assert title == 'Benutzer anlegen'
        assert instructions == 'Füllen Sie dieses Formular aus, um einen Benutzer anzulegen.'
        assert labels['password'] == 'Das Passwort dieses Kontos'
        assert labels['FORM_TYPE'] is None
    with connect(server, 'alice', None) as c:
        cmd = add_user_form(c, iq_lang='de')
        assert title_and_labels(cmd)[0] == 'Benutzer anlegen'


def test_adhoc_form_in_english(server):
    with connect(server, 'alice', 'en') as c:
        cmd = add_user_form(c)
        assert cmd.get(XML_LANG) == 'en'
        title, _, labels = title_and_labels(cmd)
        assert title == 'Adding a user'
        assert labels['password'] == 'The password for this account'


@pytest.mark.parametrize('lang,want', [
    ('de', ('Wählen Sie einen Benutzernamen und ein Passwort, um sich bei diesem Server '
            'zu registrieren.', 'de')),
    (None, ('Choose a username and password to register with this server.', 'en')),
])
def test_registration_form_before_login(server, lang, want):
    with LangClient(server.port, lang) as c:
        c.open()
        c.starttls()
        el = c.iq('get', "<query xmlns='%s'/>" % NS_REGISTER)
        assert el.get('type') == 'result', parleytest.tostr(el)
        ins = el.find('%s/%s' % (q(NS_REGISTER, 'query'), q(NS_REGISTER, 'instructions')))
        assert (ins.text, ins.get(XML_LANG)) == want


def test_user_directory_form(server):
    with connect(server, 'bob', 'de') as c:
        el = c.iq('get', "<query xmlns='%s'/>" % NS_SEARCH, to=HOST)
        assert el.get('type') == 'result', parleytest.tostr(el)
        x = el.find('%s/%s' % (q(NS_SEARCH, 'query'), q(NS_DATA, 'x')))
        assert x.get(XML_LANG) == 'de'
        assert x.findtext(q(NS_DATA, 'title')) == 'Benutzerverzeichnis'
        labels = {f.get('var'): f.get('label') for f in x.findall(q(NS_DATA, 'field'))}
        assert labels['first'] == 'Vorname' and labels['email'] == 'E-Mail'
    with connect(server, 'bob', 'en') as c:
        el = c.iq('get', "<query xmlns='%s'/>" % NS_SEARCH, to=HOST)
        x = el.find('%s/%s' % (q(NS_SEARCH, 'query'), q(NS_DATA, 'x')))
        assert x.findtext(q(NS_DATA, 'title')) == 'User directory'


def test_room_configuration_form(server):
    """The owner of a new room asks for its configuration form."""
    room = '%s@conference.%s' % (unique('raum'), HOST)
    with connect(server, 'bob', 'de') as c:
        c.send("<presence to='%s/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % room)
        c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('from') == room + '/bob',
                   what='own presence')
        el = c.iq('get', "<query xmlns='http://jabber.org/protocol/muc#owner'/>", to=room)
        assert el.get('type') == 'result', parleytest.tostr(el)
        x = el.find('%s/%s' % (q('http://jabber.org/protocol/muc#owner', 'query'), q(NS_DATA, 'x')))
        assert x.get(XML_LANG) == 'de'
        labels = {f.get('var'): f for f in x.findall(q(NS_DATA, 'field'))}
        assert labels['muc#roomconfig_persistentroom'].get('label') == 'Raum dauerhaft machen'
        options = [o.get('label') for o in labels['muc#roomconfig_allowpm'].findall(q(NS_DATA, 'option'))]
        assert 'Niemand' in options, options
        assert x.findtext(q(NS_DATA, 'instructions')).startswith('Füllen Sie dieses Formular')
