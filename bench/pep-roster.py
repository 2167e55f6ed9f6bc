#!/usr/bin/env python3
"""The accounts and rosters of the PEP benchmark as one XEP-0227 document
(urn:xmpp:pie:0), for `parleyctl import-xep0227` and ejabberd's
`ejabberdctl import_piefxis`.

usage: pep-roster.py USERS CONTACTS [DOMAIN [PASSWORD [PREFIX]]] > FILE

Users PREFIX1..PREFIX<USERS> (u1.. by default) at DOMAIN (bench.local),
password PASSWORD (pass). The users stand on a ring: user i has the
CONTACTS/2 users on either side of it as contacts, every one mutual
(subscription both, group "bench"), so each user has CONTACTS contacts and
every contact relation is symmetric. CONTACTS must be even and below USERS.
The load generator's pep scenario reads the rosters at login, so any other
layout works with it too.
"""
import sys
from xml.sax.saxutils import quoteattr


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    users, contacts = int(argv[1]), int(argv[2])
    domain = argv[3] if len(argv) > 3 else "bench.local"
    password = argv[4] if len(argv) > 4 else "pass"
    prefix = argv[5] if len(argv) > 5 else "u"
    if contacts % 2 or contacts >= users or contacts < 0:
        sys.exit("pep-roster.py: CONTACTS must be even and below USERS")
    half = contacts // 2
    out = sys.stdout
    out.write("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n")
    out.write("<host jid=%s>\n" % quoteattr(domain))
    for i in range(users):
        out.write("<user name=%s password=%s>" % (quoteattr("%s%d" % (prefix, i + 1)), quoteattr(password)))
        out.write("<query xmlns='jabber:iq:roster'>")
        for k in list(range(-half, 0)) + list(range(1, half + 1)):
            j = (i + k) % users
            out.write("<item jid=%s subscription='both'><group>bench</group></item>"
                      % quoteattr("%s%d@%s" % (prefix, j + 1, domain)))
        out.write("</query></user>\n")
    out.write("</host>\n</server-data>\n")


if __name__ == "__main__":
    main(sys.argv)
