"""Interop: Parley federating with Prosody 0.12 (Debian's prosody),
both directions, over STARTTLS and dialback with self-signed
certificates.  Prosody runs privately on loopback.

Prosody has no static host map: the Parley domain is the IP literal
127.0.0.1, which Prosody connects to on the default s2s port 5269
(skipped when that port is taken); Parley reaches prosody.test through
its s2s.hosts map."""
import asyncio
import os
import shutil
import socket
import subprocess
import time
import types
from pathlib import Path

import pytest

import parleytest
from parleytest import (FedParleyd, default_s2s_port, free_port, iq, login, logout, next_message, stanza_error, started,
                        tostr, unique)

PARLEY = '127.0.0.1'
PROSODY = 'prosody.test'

pytestmark = pytest.mark.skipif(shutil.which('prosody') is None,
                                reason='prosody is not installed (apt-get install prosody)')


def port_free(port, address='127.0.0.1'):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Prosody(parleytest.ProsodyProcess):
    def __init__(self, workdir, s2s_port, users):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = self.port
        self.s2s_port = s2s_port
        self.users = users
        data = self.dir / 'data'
        accounts = data / PROSODY.replace('.', '%2e') / 'accounts'
        accounts.mkdir(parents=True)
        for user, pw in users.items():
            (accounts / ('%s.dat' % user)).write_text('return {\n\t["password"] = "%s";\n};\n' % pw)
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + PROSODY, '-addext',
             'subjectAltName=DNS:' + PROSODY, '-keyout', str(self.dir / 'key.pem'),
             '-out', str(self.dir / 'cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)
        self.config = self.dir / 'prosody.cfg.lua'
        self.logfile = self.dir / 'prosody.log'
        self.config.write_text(f'''-- written by tests/integration/test_s2s_prosody.py
daemonize = false
run_as_root = true
pidfile = "{self.dir}/prosody.pid"
data_path = "{data}"
log = {{ debug = "{self.logfile}" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
s2s_ports = {{ {self.s2s_port} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "presence" }}
modules_disabled = {{ "s2s_bidi"; "offline"; "c2s_limits"; "s2s_auth_certs" }}
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
allow_registration = false
VirtualHost "{PROSODY}"
  ssl = {{ certificate = "{self.dir}/cert.pem"; key = "{self.dir}/key.pem" }}
''')
        self.proc = None

    def wait_ports(self):
        return [self.port, self.s2s_port]

    def password(self, user, host):
        return self.users[user]


@pytest.fixture(scope='module')
def peers(tmp_path_factory):
    with default_s2s_port():
        yield from _peers(tmp_path_factory)


def _peers(tmp_path_factory):
    if not port_free(5269):
        pytest.skip('port 5269 (where Prosody looks for 127.0.0.1) is taken')
    base = tmp_path_factory.mktemp('s2s-prosody')
    pp = free_port()
    prosody = Prosody(base / 'prosody', pp, {'carl': 'carl-secret'})
    parley = FedParleyd(base / 'parley', PARLEY, {('alice', PARLEY): 'alice-secret'},
                        peers={PROSODY: pp}, s2s_port=5269, s2s={'connect_timeout': '10s'})
    with started(parley, prosody):
        yield parley, prosody


def test_messages_with_prosody_both_ways(peers, run):
    parley, prosody = peers

    async def go():
        alice = await login(parley, 'alice', host=PARLEY, resource='x')
        carl = await login(prosody, 'carl', host=PROSODY, resource='x', password='carl-secret')
        body = unique('to prosody ')
        alice.send_message(mto='carl@' + PROSODY, mbody=body, mtype='chat')
        m = await next_message(carl, pred=lambda m: m['body'] == body, timeout=20)
        assert m['from'] == alice.boundjid
        back = unique('from prosody ')
        carl.send_message(mto=str(alice.boundjid), mbody=back, mtype='chat')
        m = await next_message(alice, pred=lambda m: m['body'] == back, timeout=20)
        assert m['from'] == carl.boundjid
        # an iq to an unknown Prosody user is answered with an error
        el = await iq(alice, 'get', 'nobody@%s/r' % PROSODY, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert el.get('type') == 'error', tostr(el)
        await logout(alice, carl)
    run(go(), timeout=90)
    listing = parley.ctl('s2s-list').stdout
    assert 'out\t%s\t%s' % (PROSODY, PARLEY) in listing, listing
    assert 'in\t%s\t%s' % (PROSODY, PARLEY) in listing, listing
