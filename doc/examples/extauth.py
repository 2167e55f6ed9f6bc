#!/usr/bin/python3
"""Example authentication program for Parley's "external" auth method.

Parley starts this program (auth.external.program) and sends it requests on
stdin, one at a time; it answers each on stdout.  Framing, both ways:
a 2-byte big-endian length, then that many bytes.

Requests (UTF-8 text; User and Server never contain ':', the password is
everything after the separator before it, so it may contain ':'):
    auth:User:Server:Password          is this the user's password?
    isuser:User:Server                 does the user exist?
    setpass:User:Server:Password       set the password
    tryregister:User:Server:Password   create the account (no if it exists)
    removeuser:User:Server             remove the account
    removeuser3:User:Server:Password   remove it if the password is right
Reply: length 2, then the result as a 2-byte big-endian number, 1 (yes) or
0 (no).

This example keeps accounts in a text file of "user@server:password" lines
(the path is its first argument, default ./extauth-users.txt) and rewrites
the file on changes.  It writes diagnostics to stderr, which Parley logs.
Never print a password.
"""
import os
import struct
import sys


def read_exact(stream, n):
    data = b''
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def load(path):
    users = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.rstrip('\n')
                if not line or line.startswith('#') or ':' not in line:
                    continue
                jid, password = line.split(':', 1)
                users[jid] = password
    except FileNotFoundError:
        pass
    return users


def save(path, users):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        os.fchmod(f.fileno(), 0o600)
        for jid, password in sorted(users.items()):
            f.write('%s:%s\n' % (jid, password))
    os.replace(tmp, path)


def handle(users, path, fields):
    op = fields[0]
    jid = '%s@%s' % (fields[1], fields[2])
    if op == 'auth':
        return users.get(jid) == fields[3]
    if op == 'isuser':
        return jid in users
    if op == 'setpass':
        if jid not in users:
            return False
        users[jid] = fields[3]
        save(path, users)
        return True
    if op == 'tryregister':
        if jid in users:
            return False
        users[jid] = fields[3]
        save(path, users)
        return True
    if op in ('removeuser', 'removeuser3'):
        if jid not in users or (op == 'removeuser3' and users[jid] != fields[3]):
            return False
        del users[jid]
        save(path, users)
        return True
    print('unknown operation %r' % op, file=sys.stderr, flush=True)
    return False


# How many ':'-separated fields each operation has; the last one of a
# four-field operation is the password and keeps any ':' it contains.
FIELDS = {'auth': 4, 'isuser': 3, 'setpass': 4, 'tryregister': 4,
          'removeuser': 3, 'removeuser3': 4}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else 'extauth-users.txt'
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = read_exact(stdin, 2)
        if header is None:
            return 0          # Parley closed our input: leave quietly
        (length,) = struct.unpack('>H', header)
        payload = read_exact(stdin, length)
        if payload is None:
            return 1
        text = payload.decode('utf-8', errors='replace')
        op = text.split(':', 1)[0]
        n = FIELDS.get(op)
        fields = text.split(':', n - 1) if n else []
        ok = False
        if n and len(fields) == n:
            users = load(path)      # re-read: another instance may have changed it
            ok = handle(users, path, fields)
        else:
            print('malformed request (operation %r)' % op, file=sys.stderr, flush=True)
        stdout.write(struct.pack('>HH', 2, 1 if ok else 0))
        stdout.flush()


if __name__ == '__main__':
    sys.exit(main())
