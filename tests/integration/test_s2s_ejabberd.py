"""Interop: Parley federating with ejabberd 23.01 (Debian's ejabberd),
both directions, over STARTTLS and dialback with self-signed
certificates.  ejabberd runs privately on loopback: its own config,
spool and log directory, node name, Erlang cookie and distribution port
(so no epmd), as the ejabberd user, in its own process group that the
fixture always kills.

Name resolution: as in test_s2s_prosody.py, the Parley domain is the
IP literal 127.0.0.1, which ejabberd dials on its outgoing_s2s_port
(set to Parley's s2s port); Parley reaches ejabberd.test through its
s2s.hosts map.  (ejabberd 23.01 fails a name like parley.test with
"DNS lookup failed: enoname" even when its Erlang resolver, pointed at
a test DNS server through inetrc, resolves it: the SRV queries arrive,
the address lookup never does.)
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from parleytest import FedParleyd, free_port, iq, login, logout, next_message, stanza_error, tostr, unique

PARLEY = '127.0.0.1'
EJABBERD = 'ejabberd.test'

pytestmark = [
    pytest.mark.skipif(shutil.which('ejabberdctl', path=os.environ.get('PATH', '') + ':/usr/sbin') is None,
                       reason='ejabberd is not installed (apt-get install ejabberd)'),
]


def _ejabberdctl():
    return shutil.which('ejabberdctl', path=os.environ.get('PATH', '') + ':/usr/sbin')


class Ejabberd:
    """A private ejabberd: start(), register(), stop() (always call it)."""

    def __init__(self, peer_port, users):
        # The ejabberd user must reach the directory: not under pytest's
        # private (0700) temporary root.
        self.dir = Path(tempfile.mkdtemp(prefix='parley-ejabberd-'))
        self.port = free_port()
        self.s2s_port = free_port()
        self.dist_port = free_port()
        self.node = 'parleytest%s@localhost' % uuid.uuid4().hex[:8]
        self.cookie = uuid.uuid4().hex
        self.users = users
        self.proc = None
        etc, spool, logs = self.dir / 'etc', self.dir / 'spool', self.dir / 'log'
        for d in (etc, spool, logs):
            d.mkdir()
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + EJABBERD, '-addext',
             'subjectAltName=DNS:' + EJABBERD, '-keyout', str(etc / 'key.pem'),
             '-out', str(etc / 'cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)
        (etc / 'ejabberd.pem').write_bytes((etc / 'cert.pem').read_bytes() + (etc / 'key.pem').read_bytes())
        (etc / 'inetrc').write_text('')
        (etc / 'ejabberdctl.cfg').write_text(
            'ERL_DIST_PORT=%d\nINET_DIST_INTERFACE=127.0.0.1\nERL_OPTIONS="-setcookie %s"\n'
            % (self.dist_port, self.cookie))
        (etc / 'ejabberd.yml').write_text(f'''# written by tests/integration/test_s2s_ejabberd.py
loglevel: info
log_rotate_count: 0
hosts:
  - {EJABBERD}
certfiles:
  - "{etc}/ejabberd.pem"
listen:
  -
    port: {self.port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    starttls_required: true
    shaper: none
  -
    port: {self.s2s_port}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
outgoing_s2s_port: {peer_port}
outgoing_s2s_families: [ipv4]
s2s_access: all
auth_method: internal
auth_password_format: scram
default_db: mnesia
acme:
  auto: false
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_s2s_dialback: {{}}
  mod_version: {{}}
''')
        shutil.chown(str(self.dir), 'ejabberd', 'ejabberd')
        for p in self.dir.rglob('*'):
            shutil.chown(str(p), 'ejabberd', 'ejabberd')

    def _ctl_argv(self, *args):
        return ['setpriv', '--reuid=ejabberd', '--regid=ejabberd', '--init-groups',
                'env', 'HOME=%s' % self.dir, _ejabberdctl(), '--config-dir', str(self.dir / 'etc'),
                '--node', self.node, '--spool', str(self.dir / 'spool'), '--logs', str(self.dir / 'log')
                ] + list(args)

    def start(self, timeout=90):
        self._out = open(self.dir / 'stdout.log', 'ab')
        self.proc = subprocess.Popen(self._ctl_argv('foreground'), cwd=str(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('ejabberd exited: %s' % self.log()[-3000:])
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                socket.create_connection(('127.0.0.1', self.s2s_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError('ejabberd did not start in %ds: %s' % (timeout, self.log()[-3000:]))
        for user, pw in self.users.items():
            self.ctl('register', user, EJABBERD, pw)

    def ctl(self, *args, timeout=60):
        r = subprocess.run(self._ctl_argv(*args), cwd=str(self.dir), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError('ejabberdctl %s: %s %s' % (' '.join(args), r.stdout, r.stderr))
        return r.stdout

    def password(self, user, host):
        return self.users[user]

    def log(self):
        text = ''
        for f in ('log/ejabberd.log', 'log/error.log', 'stdout.log'):
            try:
                text += (self.dir / f).read_text(errors='replace')
            except FileNotFoundError:
                pass
        return text

    def stop(self):
        if self.proc is not None:
            # The whole process group: ejabberdctl's shell and the Erlang VM.
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    # the VM may outlive the shell: probe the group
                    os.killpg(self.proc.pid, 0)
                    time.sleep(0.5)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
            self._out.close()
            self.proc = None
        shutil.rmtree(str(self.dir), ignore_errors=True)


@pytest.fixture(scope='module')
def peers(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2s-ejabberd')
    parley_s2s = free_port()
    ej = Ejabberd(parley_s2s, {'carl': 'carl-secret'})
    parley = FedParleyd(base / 'parley', PARLEY, {('alice', PARLEY): 'alice-secret'},
                        peers={EJABBERD: ej.s2s_port}, s2s_port=parley_s2s,
                        s2s={'connect_timeout': '20s'})
    try:
        parley.start_with_users()
        try:
            ej.start()
        except Exception:
            parley.stop()
            raise
        yield parley, ej
        if os.environ.get('PARLEY_KEEP_LOGS'):
            sys.stderr.write(ej.log()[-5000:])
        parley.finish()
    finally:
        ej.stop()


def test_messages_with_ejabberd_both_ways(peers, run):
    parley, ej = peers

    async def go():
        alice = await login(parley, 'alice', host=PARLEY, resource='x')
        carl = await login(ej, 'carl', host=EJABBERD, resource='x', password='carl-secret')
        body = unique('to ejabberd ')
        alice.send_message(mto='carl@' + EJABBERD, mbody=body, mtype='chat')
        m = await next_message(carl, pred=lambda m: m['body'] == body, timeout=40)
        assert m['from'] == alice.boundjid
        back = unique('from ejabberd ')
        carl.send_message(mto=str(alice.boundjid), mbody=back, mtype='chat')
        m = await next_message(alice, pred=lambda m: m['body'] == back, timeout=40)
        assert m['from'] == carl.boundjid
        await logout(alice, carl)
    run(go(), timeout=120)
    listing = parley.ctl('s2s-list').stdout
    assert 'out\t%s\t%s' % (EJABBERD, PARLEY) in listing, listing
    assert 'in\t%s\t%s' % (EJABBERD, PARLEY) in listing, listing


def test_iq_errors_across(peers, run):
    parley, ej = peers

    async def go():
        alice = await login(parley, 'alice', host=PARLEY, resource='y')
        carl = await login(ej, 'carl', host=EJABBERD, resource='y', password='carl-secret')
        # to an unknown ejabberd user: ejabberd answers with an error
        el = await iq(alice, 'get', 'nobody@%s/r' % EJABBERD, "<ping xmlns='urn:xmpp:ping'/>", timeout=40)
        assert el.get('type') == 'error', tostr(el)
        # and from ejabberd to an unknown Parley user: Parley answers
        el = await iq(carl, 'get', 'nobody@%s/r' % PARLEY, "<ping xmlns='urn:xmpp:ping'/>", timeout=40)
        assert el.get('type') == 'error', tostr(el)
        assert stanza_error(el) in ('service-unavailable', 'item-not-found', 'recipient-unavailable'), tostr(el)
        # a working iq to the other server itself answers
        el = await iq(alice, 'get', EJABBERD, "<query xmlns='jabber:iq:version'/>", timeout=40)
        assert el.get('type') == 'result', tostr(el)
        await logout(alice, carl)
    run(go(), timeout=120)
