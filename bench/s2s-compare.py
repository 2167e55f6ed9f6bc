#!/usr/bin/python3
"""Federation, Parley against ejabberd, in one interleaved run.

Two pairs run side by side on loopback for the whole run:
  - parleyd a.test <-> parleyd b.test (static map, STARTTLS, dialback);
  - ejabberd 127.0.0.1 <-> ejabberd 127.0.0.2 (Debian's 23.01, private
    instances as in tests/integration/test_s2s_ejabberd.py; IP-literal
    domains, each dialing the other's s2s port, STARTTLS, dialback).
Each round measures, in turn, Parley c2s (two users of a.test), Parley
s2s (a.test -> b.test), ejabberd c2s, ejabberd s2s: one sender pushes
MESSAGES chat messages as fast as the socket takes them to one receiver,
which counts them.  Reported: messages/s and server CPU seconds per 100k
messages (utime+stime from /proc; both servers summed for s2s, every
process of ejabberd's group).  The pairs idle while the other measures.

Then, per round, the latency across each pair at 1000 messages/s for
10 s (the send time travels in the body): p50, p99 and max.

Then the memory of idle s2s links for Parley: b.test also serves
IDLE hosts hN.b.test (certificate *.b.test from a test CA, so SASL
EXTERNAL and XEP-0288 bidi: one TCP+TLS stream per pair), a.test sends
one message to each, and the RSS of both parleyd before and after gives
the memory per idle link (outgoing on a.test, incoming on b.test).

  bench/s2s-compare.py [MESSAGES] [ROUNDS] [IDLE]   (from a built tree;
  as root: ejabberd runs as the ejabberd user)

ejabberd runs with +sbwt none (and the dirty-scheduler variants) so its
schedulers do not spin while idle, which would be counted as its CPU.
"""
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

top = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(top / 'tests' / 'integration'))
os.environ.setdefault('PARLEY_BUILDDIR', str(top))
os.environ.setdefault('PARLEY_SRCDIR', str(top))
os.environ.setdefault('PARLEY_SQL_DIR', str(top / 'sql'))
from parleytest import (NS_CLIENT, Ejabberd, FedParleyd, RawClient, free_port,  # noqa: E402
                        make_test_ca, q)

A, B = 'a.test', 'b.test'
EA, EB = '127.0.0.1', '127.0.0.2'
TICK = os.sysconf('SC_CLK_TCK')
ERL_QUIET = '+sbwt none +sbwtdcpu none +sbwtdio none'


def cpu(pid):
    try:
        f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(f[11]) + int(f[12])) / TICK


def rss_kb(pid):
    for line in open('/proc/%d/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0


def push(sender, receiver, to, n):
    done = threading.Event()
    count = [0]

    def reader():
        while count[0] < n:
            el = receiver.next(timeout=60)
            if el is None:
                break
            if el.tag == q(NS_CLIENT, 'message') and el.get('type') == 'chat':
                count[0] += 1
        done.set()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    chunk = ''.join("<message to='%s' type='chat'><body>m%d</body></message>" % (to, i) for i in range(100))
    t0 = time.monotonic()
    for _ in range(n // 100):
        sender.send(chunk)
    done.wait(300)
    return count[0], time.monotonic() - t0


def latency(sender, receiver, to, rate=1000, secs=10):
    """Send rate messages/s for secs seconds (batches every 10 ms), each
    carrying its send time; the receiver notes arrival: (p50, p99, max)
    in ms, and how many arrived."""
    n = rate * secs
    lat = []
    done = threading.Event()

    def reader():
        while len(lat) < n:
            el = receiver.next(timeout=30)
            if el is None:
                break
            if el.tag == q(NS_CLIENT, 'message') and el.get('type') == 'chat':
                b = el.find(q(NS_CLIENT, 'body'))
                if b is not None and b.text and b.text.startswith('t'):
                    lat.append(time.monotonic() - float(b.text[1:]))
        done.set()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    per = rate // 100
    t0 = time.monotonic()
    for k in range(n // per):
        due = t0 + k * 0.01
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = time.monotonic()
        sender.send(''.join("<message to='%s' type='chat'><body>t%.6f</body></message>" % (to, now)
                            for _ in range(per)))
    done.wait(60)
    lat.sort()
    if not lat:
        return 0, 0, 0, 0
    pick = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
    return pick(0.5), pick(0.99), lat[-1] * 1000, len(lat)


def client(port, host, user, password, address='127.0.0.1'):
    c = RawClient(port, host=host, timeout=60, address=address)
    c.login(user, password)
    return c


def idle_links(base, n):
    """RSS per idle s2s link: a.test opens one to each of n hosts of b.test."""
    ca = make_test_ca(base / 'ca', [A, B], sans={B: 'DNS:%s, DNS:*.%s' % (B, B)})
    pa, pb = free_port(), free_port()
    hosts = ['h%d.%s' % (i, B) for i in range(1, n + 1)]
    strict = {'ca_file': str(ca['ca']), 'require_valid_certificate': 'true',
              'max_connections_per_ip': '0', 'connect_timeout': '60s'}
    a = FedParleyd(base / 'ia', A, {('alice', A): 'alice-secret'},
                   peers=dict({B: pb}, **{h: pb for h in hosts}), s2s_port=pa, s2s=strict, cert=ca[A])
    b = FedParleyd(base / 'ib', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb, s2s=strict,
                   cert=ca[B])
    a.loglevel = b.loglevel = 'notice'
    a.write_config()
    b.write_config()
    with open(b.config, 'a') as f:
        for h in hosts:
            f.write('  %s: {}\n' % h)
    a.start_with_users()
    b.start_with_users()
    try:
        alice = client(a.port, A, 'alice', 'alice-secret')
        bob = client(b.port, B, 'bob', 'bob-secret')
        push(alice, bob, 'bob@' + B, 100)           # one link, warm
        time.sleep(1)
        ra0, rb0 = rss_kb(a.proc.pid), rss_kb(b.proc.pid)
        for h in hosts:
            alice.send("<message to='x@%s' type='chat'><body>hi</body></message>" % h)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = [ln for ln in a.ctl('s2s-list').stdout.splitlines() if ln.startswith('out\t')]
            ready = [ln for ln in lines if '\texternal' in ln]
            if len(ready) >= n + 1:
                break
            time.sleep(0.5)
        time.sleep(2)
        ra1, rb1 = rss_kb(a.proc.pid), rss_kb(b.proc.pid)
        links = len(ready) - 1
        return links, ra0, ra1, rb0, rb1
    finally:
        a.stop()
        b.stop()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    idle = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    base = Path(tempfile.mkdtemp(prefix='parley-s2s-compare-'))
    pa, pb = free_port(), free_port()
    ea_s2s, eb_s2s = free_port(), free_port()
    a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret', ('anna', A): 'anna-secret'},
                   peers={B: pb}, s2s_port=pa)
    b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb)
    a.loglevel = b.loglevel = 'notice'
    a.write_config()
    b.write_config()
    ea = Ejabberd(EA, eb_s2s, {'alice': 'alice-secret', 'anna': 'anna-secret'}, ip=EA, loglevel='warning',
                  s2s_port=ea_s2s, erl_options=ERL_QUIET)
    eb = Ejabberd(EB, ea_s2s, {'bob': 'bob-secret'}, ip=EB, loglevel='warning', s2s_port=eb_s2s,
                  erl_options=ERL_QUIET)
    started = []
    try:
        for s in (a, b):
            s.start_with_users()
            started.append(s)
        for e in (ea, eb):
            started.append(e)
            e.start()
        palice = client(a.port, A, 'alice', 'alice-secret')
        panna = client(a.port, A, 'anna', 'anna-secret')
        pbob = client(b.port, B, 'bob', 'bob-secret')
        ealice = client(ea.port, EA, 'alice', 'alice-secret', EA)
        eanna = client(ea.port, EA, 'anna', 'anna-secret', EA)
        ebob = client(eb.port, EB, 'bob', 'bob-secret', EB)
        push(palice, pbob, 'bob@' + B, 100)         # open the s2s streams
        push(ealice, ebob, 'bob@' + EB, 100)
        cases = (
            ('parley c2s', palice, panna, 'anna@' + A, lambda: [a.proc.pid]),
            ('parley s2s', palice, pbob, 'bob@' + B, lambda: [a.proc.pid, b.proc.pid]),
            ('ejabberd c2s', ealice, eanna, 'anna@' + EA, lambda: ea.pids()),
            ('ejabberd s2s', ealice, ebob, 'bob@' + EB, lambda: ea.pids() + eb.pids()),
        )
        print('%-14s %5s %9s %9s %12s' % ('case', 'round', 'messages', 'msg/s', 'CPU s/100k'))
        for r in range(rounds):
            for case, snd, rcv, to, pids in cases:
                ps = pids()
                c0 = sum(cpu(p) for p in ps)
                got, dt = push(snd, rcv, to, n)
                c1 = sum(cpu(p) for p in ps)
                print('%-14s %5d %9d %9.0f %12.2f' % (case, r + 1, got, got / dt,
                                                      (c1 - c0) * 100000 / max(got, 1)), flush=True)
                time.sleep(1)
        print('%-14s %9s %8s %8s %8s' % ('latency', 'received', 'p50 ms', 'p99 ms', 'max ms'))
        for r in range(rounds):
            for case, snd, rcv, to in (('parley s2s', palice, pbob, 'bob@' + B),
                                       ('ejabberd s2s', ealice, ebob, 'bob@' + EB)):
                p50, p99, mx, got = latency(snd, rcv, to)
                print('%-14s %9d %8.2f %8.2f %8.2f' % (case, got, p50, p99, mx), flush=True)
    finally:
        for s in started:
            s.stop()
    if idle > 0:
        links, ra0, ra1, rb0, rb1 = idle_links(base, idle)
        print('idle s2s links: %d; a.test (outgoing) RSS %d -> %d kB, %.1f kB/link; '
              'b.test (incoming) RSS %d -> %d kB, %.1f kB/link'
              % (links, ra0, ra1, (ra1 - ra0) / max(links, 1), rb0, rb1, (rb1 - rb0) / max(links, 1)))


if __name__ == '__main__':
    main()
