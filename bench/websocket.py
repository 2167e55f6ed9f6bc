#!/usr/bin/env python3
"""XMPP over WebSocket and BOSH against TCP c2s on the same parleyd: the
server's CPU per full login (TLS, SASL PLAIN, bind, close; BOSH: create,
PLAIN, restart, bind, terminate) and per 1000 messages (a sender to a
receiver on the same transport; TCP and WebSocket), and the memory of an
idle logged-in session (RSS growth over --idle sessions), in interleaved
rounds; medians [min-max] over the rounds.  Both transports use TLS (direct TLS for
TCP, wss for WebSocket) and the same accounts, so the difference is the
framing.  The clients are Python (tests/integration/parleytest.py's
RawClient, wsclient.py's WsClient); only parleyd's CPU is counted
(/proc/PID/stat utime+stime).

usage: bench/websocket.py [--rounds 5] [--logins 200] [--messages 5000] [--idle 200]
(run from the build tree, or with PARLEY_BUILDDIR / PARLEY_SRCDIR set)
"""
import argparse
import os
import statistics
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
    def write_config(self):
        super().write_config()
        self.https_port = parleytest.free_port()
        text = self.config.read_text().replace('loglevel: debug', 'loglevel: notice')
        text = text.replace('listen:\n', 'http:\n  max_connections_per_ip: 0\nlisten:\n  - port: %d\n'
                            '    address: 127.0.0.1\n    module: http\n    direct_tls: true\n'
                            % self.https_port, 1)
        self.config.write_text(text)


def cpu(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def client(srv, kind):
    if kind == 'tcp':
        return RawClient(srv.tls_port, direct_tls=True, timeout=30)
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


def logins(srv, kind, n):
    pid = srv.proc.pid
    start = cpu(pid)
    for i in range(n):
        if kind == 'bosh':
            b = bosh_login(srv, 'alice', 'bench-%d' % i)
            b.send(attrs=" type='terminate'")
            b.conn.close()
            continue
        c = client(srv, kind)
        c.login('alice', srv.password('alice'), presence=False)
        c.close()
    # the closes are handled a moment later: let them finish
    time.sleep(0.3)
    return (cpu(pid) - start) / n


def messages(srv, kind, n):
    a = client(srv, kind)
    a.login('alice', srv.password('alice'), resource='bench-a', presence=False)
    b = client(srv, kind)
    jid_b = b.login('bob', srv.password('bob'), resource='bench-b', presence=False)
    pid = srv.proc.pid
    start = cpu(pid)
    batch = 100
    for i in range(0, n, batch):
        for j in range(i, min(n, i + batch)):
            a.send("<message to='%s' type='chat'><body>message %d</body></message>" % (jid_b, j))
        last = 'message %d' % (min(n, i + batch) - 1)
        b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.findtext(q(NS_CLIENT, 'body')) == last,
                   timeout=60)
    used = cpu(pid) - start
    a.close()
    b.close()
    return used / n * 1000


def idle_memory(srv, kind, n):
    """RSS growth per idle logged-in session (after a warm-up set, so
    that allocator growth of the first sessions is not counted)."""
    pid = srv.proc.pid
    held = []
    for i in range(20):
        c = client(srv, kind) if kind != 'bosh' else None
        if c is None:
            held.append(bosh_login(srv, 'bob', 'warm-%d' % i))
        else:
            c.login('bob', srv.password('bob'), resource='warm-%d' % i, presence=False)
            held.append(c)
    time.sleep(1.5)
    before = rss(pid)
    for i in range(n):
        if kind == 'bosh':
            held.append(bosh_login(srv, 'bob', 'idle-%d' % i))
        else:
            c = client(srv, kind)
            c.login('bob', srv.password('bob'), resource='idle-%d' % i, presence=False)
            held.append(c)
    time.sleep(1.5)  # the sweep compacts idle parsers after a second
    per = (rss(pid) - before) / n
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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        srv = BenchParleyd(d)
        srv.start()
        srv.create_users()
        res = {(k, w): [] for k in ('tcp', 'ws', 'bosh') for w in ('login', 'msg', 'idle')}
        try:
            for r in range(args.rounds):
                order = ('tcp', 'ws', 'bosh') if r % 2 == 0 else ('bosh', 'ws', 'tcp')
                for kind in order:
                    res[(kind, 'login')].append(logins(srv, kind, args.logins))
                for kind in order:
                    if kind != 'bosh':
                        res[(kind, 'msg')].append(messages(srv, kind, args.messages))
                for kind in order:
                    res[(kind, 'idle')].append(idle_memory(srv, kind, args.idle))
        finally:
            srv.stop()
        print('parleyd, median [min-max] over %d interleaved rounds' % args.rounds)
        print('%-24s %-26s %-26s %-26s %s' % ('', 'TCP c2s (direct TLS)', 'WebSocket (wss)', 'BOSH (https)',
                                              'WS/TCP BOSH/TCP'))
        for what, label, scale, unit in (('login', 'CPU per login', 1000.0, 'ms'),
                                         ('msg', 'CPU per 1000 messages', 1000.0, 'ms'),
                                         ('idle', 'RSS per idle session', 1 / 1024, 'KiB')):
            t, w, b = res[('tcp', what)], res[('ws', what)], res[('bosh', what)]
            mt = statistics.median(t)
            print('%-24s %-26s %-26s %-26s %.2f %s' % (
                label, cell(t, scale, unit), cell(w, scale, unit), cell(b, scale, unit) if b else '-',
                statistics.median(w) / mt if mt else float('nan'),
                '%.2f' % (statistics.median(b) / mt) if b and mt else '-'))


if __name__ == '__main__':
    main()
