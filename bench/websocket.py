#!/usr/bin/env python3
"""XMPP over WebSocket against TCP c2s on the same parleyd: the server's CPU
per full login (TLS, SASL PLAIN, bind, close) and per 1000 messages
(a sender to a receiver on the same transport), in interleaved rounds;
medians [min-max] over the rounds.  Both transports use TLS (direct TLS for
TCP, wss for WebSocket) and the same accounts, so the difference is the
framing.  The clients are Python (tests/integration/parleytest.py's
RawClient, wsclient.py's WsClient); only parleyd's CPU is counted
(/proc/PID/stat utime+stime).

usage: bench/websocket.py [--rounds 5] [--logins 200] [--messages 5000]
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

TICK = os.sysconf('SC_CLK_TCK')


class BenchParleyd(parleytest.Parleyd):
    def write_config(self):
        super().write_config()
        self.https_port = parleytest.free_port()
        text = self.config.read_text().replace('loglevel: debug', 'loglevel: notice')
        text = text.replace('listen:\n', 'listen:\n  - port: %d\n    address: 127.0.0.1\n    module: http\n'
                            '    direct_tls: true\n' % self.https_port, 1)
        self.config.write_text(text)


def cpu(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def client(srv, kind):
    if kind == 'tcp':
        return RawClient(srv.tls_port, direct_tls=True, timeout=30)
    return WsClient(srv.https_port, tls=True, timeout=30)


def logins(srv, kind, n):
    pid = srv.proc.pid
    start = cpu(pid)
    for _ in range(n):
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


def cell(vals, scale=1000.0, unit='ms'):
    vals = [v * scale for v in vals]
    return '%.2f %s [%.2f-%.2f]' % (statistics.median(vals), unit, min(vals), max(vals))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--logins', type=int, default=200)
    ap.add_argument('--messages', type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        srv = BenchParleyd(d)
        srv.start()
        srv.create_users()
        res = {('tcp', 'login'): [], ('ws', 'login'): [], ('tcp', 'msg'): [], ('ws', 'msg'): []}
        try:
            for r in range(args.rounds):
                order = ('tcp', 'ws') if r % 2 == 0 else ('ws', 'tcp')
                for kind in order:
                    res[(kind, 'login')].append(logins(srv, kind, args.logins))
                for kind in order:
                    res[(kind, 'msg')].append(messages(srv, kind, args.messages))
        finally:
            srv.stop()
        print('parleyd CPU, median [min-max] over %d interleaved rounds' % args.rounds)
        print('%-22s %-28s %-28s %s' % ('', 'TCP c2s (direct TLS)', 'WebSocket (wss)', 'WS / TCP'))
        for what, label in (('login', 'per login'), ('msg', 'per 1000 messages')):
            t, w = res[('tcp', what)], res[('ws', what)]
            print('%-22s %-28s %-28s %.2f' % (label, cell(t), cell(w), statistics.median(w) / statistics.median(t)))


if __name__ == '__main__':
    main()
