"""IRC through biboumi: biboumi (an XMPP-IRC gateway) runs as an external
component of parleyd, ngIRCd as the IRC server, both on loopback with
generated configurations.  An XMPP user joins an IRC channel through the
gateway; a plain IRC client (a few lines of Python) sees the join and the
user's message, and the user gets the IRC client's message and sees its
nick among the room's occupants.  Skipped when biboumi or ngircd is not
installed (Debian packages biboumi and ngircd)."""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, q, tostr, unique

BIBOUMI = shutil.which('biboumi') or ('/usr/bin/biboumi' if os.path.exists('/usr/bin/biboumi') else None)
NGIRCD = shutil.which('ngircd') or ('/usr/sbin/ngircd' if os.path.exists('/usr/sbin/ngircd') else None)
GATEWAY = 'irc.' + HOST
SECRET = 'biboumi-secret'
IRC_HOST = '127.0.0.1'
CHANNEL = '#parley'
NS_MUC = 'http://jabber.org/protocol/muc'
NS_MUC_USER = 'http://jabber.org/protocol/muc#user'
NS_COMMANDS = 'http://jabber.org/protocol/commands'
NS_DATA = 'jabber:x:data'

pytestmark = pytest.mark.skipif(BIBOUMI is None or NGIRCD is None,
                                reason='biboumi and ngircd are not installed '
                                       '(Debian packages biboumi, ngircd)')


def _wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError('%s: not within %ss' % (what, timeout))


def _port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


class Proc:
    """A helper process with its output in a file; stopped with SIGTERM."""

    def __init__(self, argv, logfile, cwd):
        self.logfile = logfile
        self._f = open(logfile, 'ab')
        self.proc = subprocess.Popen(argv, cwd=str(cwd), stdin=subprocess.DEVNULL,
                                     stdout=self._f, stderr=subprocess.STDOUT)

    def log(self):
        try:
            return self.logfile.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._f.close()


class IrcClient:
    """A raw IRC client: NICK, USER, JOIN, PRIVMSG and reading lines."""

    def __init__(self, port, nick):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.nick = nick
        self.buf = b''
        self.lines = []
        self.send('NICK %s' % nick)
        self.send('USER %s 0 * :Parley test' % nick)
        self.wait(lambda ln: ' 001 ' in ln, 'welcome (001)')

    def send(self, line):
        self.sock.sendall(line.encode() + b'\r\n')

    def wait(self, pred, what, timeout=20):
        end = time.monotonic() + timeout
        while True:
            while b'\r\n' in self.buf or b'\n' in self.buf:
                line, _, self.buf = self.buf.partition(b'\n')
                text = line.rstrip(b'\r').decode('utf-8', 'replace')
                self.lines.append(text)
                if text.startswith('PING'):
                    self.send('PONG' + text[4:])
                    continue
                if pred(text):
                    return text
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError('IRC: no %s within %ss; got %s' % (what, timeout, self.lines[-20:]))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            if not data:
                raise AssertionError('IRC: connection closed waiting for %s; got %s' % (what, self.lines[-20:]))
            self.buf += data

    def close(self):
        try:
            self.send('QUIT :bye')
        except OSError:
            pass
        self.sock.close()


@pytest.fixture(scope='module')
def irc(tmp_path_factory):
    """parleyd with biboumi as the component GATEWAY, and ngIRCd."""
    d = tmp_path_factory.mktemp('parley-irc')
    srv = parleytest.Parleyd(d, components='  %s: { secret: "%s", name: "IRC gateway" }\n'
                             % (GATEWAY, SECRET))
    srv.start_with_users()
    procs = []
    try:
        irc_port = parleytest.free_port()
        (d / 'ngircd.conf').write_text(f"""\
[Global]
Name = irc.parley.test
Info = Parley test IRC server
Listen = 127.0.0.1
Ports = {irc_port}
PidFile = {d}/ngircd.pid
MotdPhrase = "Parley test"
[Limits]
MaxConnectionsIP = 0
PingTimeout = 300
[Options]
DNS = no
Ident = no
PAM = no
""")
        ngircd = Proc([NGIRCD, '--nodaemon', '--config', str(d / 'ngircd.conf')], d / 'ngircd.log', d)
        procs.append(ngircd)
        _wait(lambda: _port_open(irc_port) or ngircd.proc.poll() is not None, 20, 'ngircd listening')
        assert ngircd.proc.poll() is None, 'ngircd exited:\n' + ngircd.log()[-3000:]

        (d / 'biboumi.cfg').write_text(f"""\
hostname={GATEWAY}
password={SECRET}
xmpp_server_ip=127.0.0.1
port={srv.component_port}
db_name={d}/biboumi.sqlite
identd_port=0
log_level=1
policy_directory={d}
realname_customization=true
""")
        biboumi = Proc([BIBOUMI, str(d / 'biboumi.cfg')], d / 'biboumi.log', d)
        procs.append(biboumi)

        def connected():
            assert biboumi.proc.poll() is None, 'biboumi exited:\n' + biboumi.log()[-3000:]
            out = srv.ctl('components').stdout
            return any(ln.split()[:1] == [GATEWAY] and '127.0.0.1' in ln for ln in out.splitlines())
        _wait(connected, 30, 'biboumi connected as component %s' % GATEWAY)
        yield srv, irc_port, biboumi, ngircd
    finally:
        for p in reversed(procs):
            p.stop()
        srv.finish()


def _configure_ports(alice, irc_port):
    """Ad-hoc 'configure' of the IRC server on the gateway (per user):
    plain-text port irc_port, no TLS ports."""
    server_jid = '%s@%s' % (IRC_HOST, GATEWAY)
    res = alice.iq('set', "<command xmlns='%s' node='configure' action='execute'/>" % NS_COMMANDS,
                   to=server_jid, timeout=20)
    assert res.get('type') == 'result', tostr(res)
    cmd = res.find(q(NS_COMMANDS, 'command'))
    form = cmd.find(q(NS_DATA, 'x'))
    assert form is not None, tostr(res)
    fields = {f.get('var') for f in form.iter(q(NS_DATA, 'field'))}
    assert 'ports' in fields and 'tls_ports' in fields, tostr(res)
    submit = ("<command xmlns='%s' node='configure' sessionid='%s' action='complete'>"
              "<x xmlns='%s' type='submit'>"
              "<field var='ports'><value>%d</value></field>"
              "<field var='tls_ports'/>"
              "</x></command>" % (NS_COMMANDS, cmd.get('sessionid'), NS_DATA, irc_port))
    done = alice.iq('set', submit, to=server_jid, timeout=20)
    assert done.get('type') == 'result', tostr(done)
    assert done.find(q(NS_COMMANDS, 'command')).get('status') == 'completed', tostr(done)


def test_join_and_talk_both_ways(irc):
    srv, irc_port, biboumi, ngircd = irc
    alice = RawClient(srv.port, timeout=20)
    bob = None
    try:
        alice.login('alice', srv.password('alice'), resource='irc')
        # the gateway is listed by the host
        items = alice.iq('get', "<query xmlns='%s'/>" % parleytest.NS_DISCO_ITEMS, to=HOST)
        assert GATEWAY in [i.get('jid') for i in items.iter(q(parleytest.NS_DISCO_ITEMS, 'item'))], \
            tostr(items)
        _configure_ports(alice, irc_port)

        bob = IrcClient(irc_port, 'ircbob')
        bob.send('JOIN %s' % CHANNEL)
        bob.wait(lambda ln: ' 366 ' in ln, 'end of NAMES after JOIN')

        room = '%s%%%s@%s' % (CHANNEL, IRC_HOST, GATEWAY)
        alice.send("<presence to='%s/alice'><x xmlns='%s'/></presence>" % (room, NS_MUC))

        # the IRC side sees alice join
        bob.wait(lambda ln: re.match(r':alice!\S+ JOIN :?%s' % re.escape(CHANNEL), ln) is not None,
                 'alice joining %s' % CHANNEL, timeout=30)

        # alice sees ircbob among the occupants and her own presence (110)
        def occupant(nick):
            return lambda e: (e.tag == q(NS_CLIENT, 'presence') and e.get('from') == '%s/%s' % (room, nick)
                              and e.get('type') is None)
        alice.wait_for(occupant('ircbob'), timeout=30, what='ircbob in the occupant list')

        def self_presence(e):
            if e.tag != q(NS_CLIENT, 'presence') or e.get('from') != room + '/alice':
                return False
            x = e.find(q(NS_MUC_USER, 'x'))
            return x is not None and any(s.get('code') == '110' for s in x.findall(q(NS_MUC_USER, 'status')))
        alice.wait_for(self_presence, timeout=30, what='self-presence in the room')

        # XMPP -> IRC
        text = unique('hello-from-xmpp-')
        alice.send("<message to='%s' type='groupchat'><body>%s</body></message>" % (room, text))
        bob.wait(lambda ln: ln.startswith(':alice!') and ('PRIVMSG %s :%s' % (CHANNEL, text)) in ln,
                 'alice\'s message on IRC', timeout=30)

        # IRC -> XMPP
        reply = unique('hello-from-irc-')
        bob.send('PRIVMSG %s :%s' % (CHANNEL, reply))
        got = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'groupchat'
                             and e.findtext(q(NS_CLIENT, 'body')) == reply,
                             timeout=30, what='the IRC message in the room')
        assert got.get('from') == room + '/ircbob', tostr(got)

        # the IRC user leaves: alice sees the occupant go
        bob.send('PART %s :later' % CHANNEL)
        alice.wait_for(lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('from') == room + '/ircbob'
                       and e.get('type') == 'unavailable', timeout=30, what='ircbob leaving')

        # parleyctl counts the gateway's traffic
        out = srv.ctl('components').stdout
        line = [ln for ln in out.splitlines() if ln.split()[:1] == [GATEWAY]][0]
        assert int(line.split()[-1]) > 0 and int(line.split()[-2]) > 0, out
        alice.send("<presence to='%s/alice' type='unavailable'/>" % room)
    except Exception:
        print('--- biboumi log ---\n' + biboumi.log()[-4000:])
        print('--- ngircd log ---\n' + ngircd.log()[-2000:])
        raise
    finally:
        if bob is not None:
            bob.close()
        alice.close()
    assert biboumi.proc.poll() is None, biboumi.log()[-3000:]
