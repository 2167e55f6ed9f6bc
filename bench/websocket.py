#!/usr/bin/env python3
"""XMPP over WebSocket and BOSH against TCP c2s on the same parleyd, and
(--ejabberd) WebSocket on ejabberd: the server's CPU per full login (TLS,
SASL PLAIN, bind, close; BOSH: create, PLAIN, restart, bind, terminate)
and per 100k messages (a sender to a receiver on the same transport; BOSH:
batches of --bosh-batch messages a request, the receiver long-polling), and
the memory of an idle logged-in session (RSS growth over --idle sessions),
in interleaved rounds; medians [min-max] over the rounds.  Both transports use TLS (direct TLS for
TCP, wss for WebSocket) and the same accounts, so the difference is the
framing.  The clients are Python (tests/integration/parleytest.py's
RawClient, wsclient.py's WsClient); only parleyd's CPU is counted
(/proc/PID/stat utime+stime; ejabberd: every process of its node), and
for messages also Parley's loop thread alone (the framing's cost, without
the archive's SQLite workers).  The per-account stanza rate limit is off:
its burst would run out during the first rounds and slow the later ones.
--baseline runs a second parleyd (an older build) beside this one, its
TCP and WebSocket cases interleaved with ours, for before/after figures.

--ejabberd runs Debian's ejabberd through the shared harness
(--harness, default ../shared/bench beside the source tree): its
peers/ are copied with bench/peers/ejabberd-ws.sh, which adds an
ejabberd_http listener with WebSocket at /ws (TLS) to the harness's
configuration.  Run as root (ejabberd runs as its own user).

usage: bench/websocket.py [--rounds 5] [--logins 200] [--messages 5000] [--idle 200]
                          [--cases login,msg,idle] [--kinds tcp,ws,bosh] [--baseline OLD-PARLEYD]
                          [--bosh-batch 100] [--ejabberd] [--harness DIR]
(run from the build tree, or with PARLEY_BUILDDIR / PARLEY_SRCDIR set)
"""
import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'integration'))

import parleytest  # noqa: E402
from parleytest import NS_CLIENT, RawClient, q  # noqa: E402
from wsclient import WsClient  # noqa: E402
from test_bosh import Bosh  # noqa: E402

TICK = os.sysconf('SC_CLK_TCK')


class BenchParleyd(parleytest.Parleyd):
    """parleyd with an https listener, and without the per-account
    stanza rate limit: its default burst (20,000 stanzas) is used up by the
    first rounds' messages, after which every message case runs at 200
    stanzas a second and its figures are mostly the loop's idle CPU over
    the longer time (that was the CPU "burnt in the background" of the
    earlier runs)."""

    def __init__(self, d, parleyd=None):
        super().__init__(d)
        if parleyd is not None:
            self.parleyd = parleyd

    def write_config(self):
        super().write_config()
        self.https_port = parleytest.free_port()
        text = self.config.read_text().replace('loglevel: debug', 'loglevel: notice')
        text = text.replace('listen:\n', 'http:\n  max_connections_per_ip: 0\nlisten:\n  - port: %d\n'
                            '    address: 127.0.0.1\n    module: http\n    direct_tls: true\n'
                            % self.https_port, 1)
        text = text.replace('\nmodules:\n', '\nmodules:\n  limits: { stanza_rate: 0 }\n', 1)
        self.config.write_text(text)


def cpu(pid, tid=None):
    """utime+stime of a process (or of one of its threads) in seconds."""
    path = '/proc/%d/stat' % pid if tid is None else '/proc/%d/task/%d/stat' % (pid, tid)
    with open(path) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


EJ_HTTP_PORT = 15453
EJ_DOMAIN = 'bench.local'
EJ_PASS = 'pass'


class Ejabberd:
    """ejabberd with WebSocket, from a copy of the shared harness's peers/."""

    def __init__(self, harness):
        self.dir = tempfile.mkdtemp(prefix='bench-ejws-')
        os.chmod(self.dir, 0o755)   # ejabberd (its own user) starts in it
        for f in os.listdir(os.path.join(harness, 'peers')):
            if f.endswith('.sh'):
                shutil.copy(os.path.join(harness, 'peers', f), self.dir)
        shutil.copy(os.path.join(HERE, 'peers', 'ejabberd-ws.sh'), self.dir)
        self.env = dict(os.environ, PEER_ROOT=os.environ.get('PEER_ROOT', '/tmp/bench-peers'),
                        EJABBERD_WS_HTTP_PORT=str(EJ_HTTP_PORT))

    def ctl(self, *args):
        return subprocess.run(['bash', os.path.join(self.dir, 'ejabberd-ws.sh')] + list(args), cwd='/',
                              env=self.env, check=True, capture_output=True, text=True).stdout

    def start(self):
        self.ctl('start')
        self.ctl('adduser', '3')

    def stop(self):
        try:
            self.ctl('stop')
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def pids(self):
        return [int(p) for p in self.ctl('pids').split()]


def cpu_of(srv, kind, ej):
    if kind == 'ejws':
        return sum(cpu(p) for p in ej.pids())
    return cpu(srv.proc.pid)


def rss_of(srv, kind, ej):
    if kind == 'ejws':
        return sum(rss(p) for p in ej.pids())
    return rss(srv.proc.pid)


def user(srv, kind, name):
    """(user, password) of the bench accounts: alice, bob, carol on Parley;
    u1, u2, u3 on ejabberd."""
    if kind == 'ejws':
        return {'alice': 'u1', 'bob': 'u2', 'carol': 'u3'}[name], EJ_PASS
    return name, srv.password(name)


def login(srv, kind, u, pw, resource=None, failures=[0]):
    """A logged-in TCP or WebSocket client; a login refused under load
    (seen once in a long run) is tried once more, and counted on stderr."""
    for attempt in (1, 2):
        c = client(srv, kind)
        try:
            c.login(u, pw, resource=resource, presence=False)
            return c
        except AssertionError as e:
            c.close()
            failures[0] += 1
            print('%s login of %s failed (%d so far): %s' % (kind, u, failures[0], e), file=sys.stderr)
            if attempt == 2:
                raise


def client(srv, kind):
    if kind == 'tcp':
        return RawClient(srv.tls_port, direct_tls=True, timeout=30)
    if kind == 'ejws':
        return WsClient(EJ_HTTP_PORT, tls=True, timeout=30, host=EJ_DOMAIN, path='/ws')
    return WsClient(srv.https_port, tls=True, timeout=30)


def rss(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0


def bosh_login(srv, user, resource):
    b = Bosh(srv, wait=5)
    b.login(user, srv.password(user), resource)
    return b


def logins(srv, kind, n, ej=None):
    start = cpu_of(srv, kind, ej)
    u, pw = user(srv, kind, 'alice')
    for i in range(n):
        if kind == 'bosh':
            b = bosh_login(srv, 'alice', 'bench-%d' % i)
            b.send(attrs=" type='terminate'")
            b.conn.close()
            continue
        login(srv, kind, u, pw).close()
    # the closes are handled a moment later: let them finish
    time.sleep(0.3)
    return (cpu_of(srv, kind, ej) - start) / n


def is_last(last):
    return lambda e: e.tag == q(NS_CLIENT, 'message') and e.findtext(q(NS_CLIENT, 'body')) == last


def bosh_post(c, inner='', attrs='', retries=[0]):
    """c.send, once more on a new connection when the old one was closed
    under it (the same rid: the server answers it once)."""
    c.rid += 1
    try:
        return c.post(inner, attrs)
    except (http.client.RemoteDisconnected, ConnectionError):
        retries[0] += 1
        print('bosh: connection closed under a request (%d so far): same rid again' % retries[0],
              file=sys.stderr)
        c.conn.close()
        c.conn = c.connect()
        return c.post(inner, attrs)


def bosh_wait(c, pred, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        for el in c.got:
            if pred(el):
                return el
        assert time.monotonic() < deadline, 'timed out'
        bosh_post(c)


def bosh_messages(srv, n, batch):
    a = Bosh(srv, wait=1)
    a.login('alice', srv.password('alice'), 'bench-a')
    b = Bosh(srv, wait=1)
    jid_b = b.login('bob', srv.password('bob'), 'bench-b')
    a.got.clear()
    b.got.clear()
    start = cpu(srv.proc.pid)
    for i in range(0, n, batch):
        # one request carries the batch; it is held for 'wait' (the sender
        # gets nothing back), the receiver's long poll is answered at once
        bosh_post(a, ''.join("<message xmlns='jabber:client' to='%s' type='chat'><body>message %d</body>"
                             "</message>" % (jid_b, j) for j in range(i, min(n, i + batch))))
        bosh_wait(b, is_last('message %d' % (min(n, i + batch) - 1)))
        b.got.clear()
    settle(srv, "bosh", None)
    used = cpu(srv.proc.pid) - start
    for c in (a, b):
        c.send(attrs=" type='terminate'")
        c.conn.close()
    return used / n * 1000


def settle(srv, kind, ej, timeout=60):
    """Wait until the server's CPU stops moving: the archive's writes of
    the last messages finish after they were delivered, and belong to the
    case (and a login right after would find the storage queue full)."""
    last = cpu_of(srv, kind, ej)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_of(srv, kind, ej)
        if now == last:
            return
        last = now


def messages(srv, kind, n, ej=None, bosh_batch=100, loop_cpu=None):
    """Server CPU per message; the loop thread's alone is appended to
    loop_cpu (a list) when given (Parley only)."""
    if kind == 'bosh':
        return bosh_messages(srv, n, bosh_batch)
    ua, pwa = user(srv, kind, 'alice')
    a = login(srv, kind, ua, pwa, 'bench-a')
    ub, pwb = user(srv, kind, 'bob')
    b = login(srv, kind, ub, pwb, 'bench-b')
    jid_b = b.jid
    start = cpu_of(srv, kind, ej)
    loop_start = cpu(srv.proc.pid, srv.proc.pid) if kind != 'ejws' else 0
    batch = 100
    for i in range(0, n, batch):
        for j in range(i, min(n, i + batch)):
            a.send("<message to='%s' type='chat'><body>message %d</body></message>" % (jid_b, j))
        b.wait_for(is_last('message %d' % (min(n, i + batch) - 1)), timeout=60)
    settle(srv, kind, ej)
    used = cpu_of(srv, kind, ej) - start
    if loop_cpu is not None and kind != 'ejws':
        loop_cpu.append((cpu(srv.proc.pid, srv.proc.pid) - loop_start) / n * 1000)
    a.close()
    b.close()
    return used / n * 1000


def idle_memory(srv, kind, n, ej=None):
    """RSS growth per idle logged-in session (after a warm-up set, so
    that allocator growth of the first sessions is not counted)."""
    held = []
    u, pw = user(srv, kind, 'carol')
    for i in range(20):
        if kind == 'bosh':
            held.append(bosh_login(srv, 'carol', 'warm-%d' % i))
        else:
            held.append(login(srv, kind, u, pw, 'warm-%d' % i))
    time.sleep(1.5)
    before = rss_of(srv, kind, ej)
    for i in range(n):
        if kind == 'bosh':
            held.append(bosh_login(srv, 'carol', 'idle-%d' % i))
        else:
            held.append(login(srv, kind, u, pw, 'idle-%d' % i))
    time.sleep(1.5)  # the sweep compacts idle parsers after a second
    per = (rss_of(srv, kind, ej) - before) / n
    for c in held:
        if kind == 'bosh':
            c.conn.close()
        else:
            c.close()
    time.sleep(0.5)
    return per


def cell(vals, scale=1000.0, unit='ms'):
    vals = [v * scale for v in vals]
    return '%.2f %s [%.2f-%.2f]' % (statistics.median(vals), unit, min(vals), max(vals))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--logins', type=int, default=200)
    ap.add_argument('--messages', type=int, default=5000)
    ap.add_argument('--idle', type=int, default=200)
    ap.add_argument('--bosh-batch', type=int, default=100)
    ap.add_argument('--ejabberd', action='store_true', help="also ejabberd's WebSocket")
    ap.add_argument('--harness', default=os.path.join(parleytest.srcdir(), '..', 'shared', 'bench'))
    ap.add_argument('--baseline', metavar='PARLEYD',
                    help='another parleyd binary (an older build) run beside this one: its TCP and '
                         'WebSocket cases are interleaved with ours')
    ap.add_argument('--cases', default='login,msg,idle', help='which cases to run (comma-separated)')
    ap.add_argument('--kinds', default='tcp,ws,bosh', help="Parley's transports to run (comma-separated)")
    args = ap.parse_args()
    cases = args.cases.split(',')
    kinds = tuple(args.kinds.split(',')) + (('ejws',) if args.ejabberd else ())
    print('load average at start: %s' % ' '.join(open('/proc/loadavg').read().split()[:3]))
    ej = None
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as d2:
        srv = BenchParleyd(d)
        srv.start()
        srv.create_users()
        targets = [(k, k, srv) for k in kinds]
        base = None
        if args.baseline:
            base = BenchParleyd(d2, parleyd=args.baseline)
            base.start()
            base.create_users()
            targets += [('tcp@base', 'tcp', base), ('ws@base', 'ws', base)]
        res = {(t[0], w): [] for t in targets for w in ('login', 'msg', 'loop', 'idle')}
        try:
            if args.ejabberd:
                ej = Ejabberd(args.harness)
                ej.start()
            for r in range(args.rounds):
                order = targets if r % 2 == 0 else tuple(reversed(targets))
                if 'login' in cases:
                    for label, kind, s in order:
                        res[(label, 'login')].append(logins(s, kind, args.logins, ej))
                if 'msg' in cases:
                    for label, kind, s in order:
                        res[(label, 'msg')].append(messages(s, kind, args.messages, ej, args.bosh_batch,
                                                            res[(label, 'loop')]))
                if 'idle' in cases:
                    for label, kind, s in order:
                        res[(label, 'idle')].append(idle_memory(s, kind, args.idle, ej))
                print('round %d done' % (r + 1), file=sys.stderr)
        finally:
            srv.stop()
            if base is not None:
                base.stop()
            if ej is not None:
                ej.stop()
        print('load average at end: %s' % ' '.join(open('/proc/loadavg').read().split()[:3]))
        print('median [min-max] over %d interleaved rounds' % args.rounds)
        names = {'tcp': 'Parley TCP c2s (TLS)', 'ws': 'Parley WebSocket (wss)', 'bosh': 'Parley BOSH (https)',
                 'ejws': 'ejabberd WebSocket (wss)', 'tcp@base': 'baseline TCP c2s (TLS)',
                 'ws@base': 'baseline WebSocket (wss)'}
        labels = [t[0] for t in targets]
        ratios = [('WS/TCP', 'ws', 'tcp')] + ([('BOSH/TCP', 'bosh', 'tcp')] if 'bosh' in kinds else [])
        if args.ejabberd:
            ratios.append(('ejabberd WS/Parley WS', 'ejws', 'ws'))
        if base is not None:
            ratios += [('baseline WS/TCP', 'ws@base', 'tcp@base'), ('WS/baseline WS', 'ws', 'ws@base')]
        print('| | %s | %s |' % (' | '.join(names[x] for x in labels), ' | '.join(r[0] for r in ratios)))
        print('|---' * (len(labels) + len(ratios) + 1) + '|')
        for what, label, scale, unit in (('login', 'CPU per login', 1000.0, 'ms'),
                                         ('msg', 'CPU per 100k messages', 100.0, 's'),
                                         ('loop', 'loop thread CPU per 100k messages', 100.0, 's'),
                                         ('idle', 'RSS per idle session', 1 / 1024, 'KiB')):
            if not any(res[(x, what)] for x in labels):
                continue
            med = {x: statistics.median(res[(x, what)]) if res[(x, what)] else float('nan') for x in labels}
            med.setdefault('tcp', float('nan'))
            row = '| %s | %s |' % (label, ' | '.join(cell(res[(x, what)], scale, unit) if res[(x, what)] else '-'
                                                     for x in labels))
            for _, a, b in ratios:
                row += ' %.2f |' % (med[a] / med[b] if med[b] else float('nan'))
            print(row)


if __name__ == '__main__':
    main()
