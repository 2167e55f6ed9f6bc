#!/usr/bin/python3
"""Log in to the packaged parleyd of tests/package/run.sh from the host.

    login.py PORT TLS_PORT DOMAIN USER1 PASSWORD1 USER2 PASSWORD2

USER1 logs in over STARTTLS, USER2 over direct TLS (slixmpp, any
certificate accepted: the package makes a self-signed one); USER1 sends
USER2 a message, which must arrive.  A wrong password must be refused.
Exits 0 when all of that holds and says what failed otherwise."""
import asyncio
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
import parleytest  # noqa: E402


class Server:
    """What parleytest.login needs to know about a server it did not start."""

    def __init__(self, port, tls_port, passwords):
        self.port = port
        self.tls_port = tls_port
        self.passwords = passwords

    def password(self, user, host):
        return self.passwords[user]


async def main(port, tls_port, domain, u1, p1, u2, p2):
    server = Server(port, tls_port, {u1: p1, u2: p2})
    try:
        await parleytest.login(server, u1, host=domain, password=p1 + 'x', mech='PLAIN')
    except parleytest.LoginFailed:
        pass
    else:
        raise AssertionError('a wrong password was accepted')
    c1 = await parleytest.login(server, u1, host=domain, mech='SCRAM-SHA-256')
    c2 = await parleytest.login(server, u2, host=domain, mech='PLAIN', direct_tls=True)
    try:
        body = 'from the package test ' + uuid.uuid4().hex
        c1.send_message(mto='%s@%s' % (u2, domain), mbody=body, mtype='chat')
        m = await parleytest.next_message(c2, timeout=15, pred=lambda m: m['body'] == body)
        assert str(m['from'].bare) == '%s@%s' % (u1, domain), m['from']
    finally:
        await parleytest.logout(c1, c2)


if __name__ == '__main__':
    if len(sys.argv) != 8:
        sys.exit(__doc__)
    port, tls_port = int(sys.argv[1]), int(sys.argv[2])
    try:
        asyncio.run(asyncio.wait_for(main(port, tls_port, *sys.argv[3:]), 90))
    except Exception as e:  # noqa: BLE001 -- one line for the shell script
        print('login.py: FAILED: %r' % (e,), file=sys.stderr)
        sys.exit(1)
    print('login.py: %s and %s logged in and exchanged a message' % (sys.argv[4], sys.argv[6]))
