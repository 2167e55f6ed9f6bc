#!/usr/bin/python3
"""Messages across two federated parleyd instances (a.test -> b.test, over
s2s with STARTTLS and dialback) against the same between two users of
one instance (c2s only): messages per second at full speed from one
sender to one receiver, and the CPU the servers spent per 100k messages
(both servers summed for the federated run).  A rough figure for one
loopback machine, not the harness's interleaved suite.

  bench/s2s-msg.py [MESSAGES] [ROUNDS]      (from a built tree)
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
from parleytest import FedParleyd, RawClient, free_port, q, NS_CLIENT  # noqa: E402

A, B = 'a.test', 'b.test'
TICK = os.sysconf('SC_CLK_TCK')


def cpu(pid):
    f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def run(sender, receiver, to, n):
    done = threading.Event()
    count = [0]

    def reader():
        while count[0] < n:
            el = receiver.next(timeout=60)
            if el is None:
                break
            if el.tag == q(NS_CLIENT, 'message'):
                count[0] += 1
        done.set()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    chunk = ''.join("<message to='%s' type='chat'><body>m%d</body></message>" % (to, i) for i in range(100))
    t0 = time.monotonic()
    for _ in range(n // 100):
        sender.send(chunk)
    done.wait(120)
    return count[0], time.monotonic() - t0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    base = Path(tempfile.mkdtemp(prefix='parley-s2s-bench-'))
    pa, pb = free_port(), free_port()
    a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret', ('anna', A): 'anna-secret'},
                   peers={B: pb}, s2s_port=pa)
    b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb)
    a.loglevel = b.loglevel = 'notice'
    a.write_config()
    b.write_config()
    a.start_with_users()
    b.start_with_users()
    try:
        alice = RawClient(a.port, host=A, timeout=60)
        alice.login('alice', 'alice-secret')
        anna = RawClient(a.port, host=A, timeout=60)
        anna.login('anna', 'anna-secret')
        bob = RawClient(b.port, host=B, timeout=60)
        bob.login('bob', 'bob-secret')
        run(alice, bob, 'bob@' + B, 100)        # opens the s2s streams
        print('%-10s %10s %8s %12s' % ('case', 'messages', 'msg/s', 'CPU s/100k'))
        for _ in range(rounds):
            for case, rcv, to, pids in (('c2s', anna, 'anna@' + A, [a.proc.pid]),
                                        ('s2s', bob, 'bob@' + B, [a.proc.pid, b.proc.pid])):
                c0 = sum(cpu(p) for p in pids)
                got, dt = run(alice, rcv, to, n)
                c1 = sum(cpu(p) for p in pids)
                print('%-10s %10d %8.0f %12.2f' % (case, got, got / dt, (c1 - c0) * 100000 / max(got, 1)))
    finally:
        a.stop()
        b.stop()


if __name__ == '__main__':
    main()
