#!/usr/bin/python3
"""A misbehaving program for the external auth method, for the protocol
tests.  It answers like doc/examples/extauth.py (accounts from a
"user@server:password" file, the first argument) except as its mode says:

  extauth_faulty.py USERS good
  extauth_faulty.py USERS hang-on USER      never answers a request about USER
  extauth_faulty.py USERS die-after N       exits after answering N requests
  extauth_faulty.py USERS garbage-on USER   writes garbage for a request about USER
  extauth_faulty.py USERS crash-at-start    writes to stderr and exits at once
  extauth_faulty.py USERS crash-while FILE  dies (SIGSEGV) on every request while FILE exists
"""
import os
import signal
import struct
import sys
import time


def read_exact(stream, n):
    data = b''
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main():
    path, mode = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    if mode == 'crash-at-start':
        print('crash-at-start: cannot open the account database', file=sys.stderr, flush=True)
        return 3
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    served = 0
    while True:
        header = read_exact(stdin, 2)
        if header is None:
            return 0
        (length,) = struct.unpack('>H', header)
        text = read_exact(stdin, length).decode()
        if mode == 'crash-while' and os.path.exists(arg):
            print('crashing on a request', file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        op = text.split(':', 1)[0]
        fields = text.split(':', 3) if op in ('auth', 'setpass', 'tryregister') else text.split(':')
        user = fields[1]
        if mode == 'hang-on' and user == arg:
            print('hanging on a request about %s' % user, file=sys.stderr, flush=True)
            time.sleep(3600)
        if mode == 'garbage-on' and user == arg:
            stdout.write(b'ok, sure!\n')
            stdout.flush()
            continue
        users = {}
        with open(path) as f:
            for line in f:
                jid, _, pw = line.rstrip('\n').partition(':')
                users[jid] = pw
        jid = '%s@%s' % (user, fields[2])
        if op == 'auth':
            ok = users.get(jid) == fields[3]
        elif op == 'isuser':
            ok = jid in users
        else:
            ok = False
        stdout.write(struct.pack('>HH', 2, 1 if ok else 0))
        stdout.flush()
        served += 1
        if mode == 'die-after' and served >= int(arg):
            print('served %d requests, leaving' % served, file=sys.stderr, flush=True)
            return 0


if __name__ == '__main__':
    sys.exit(main())
