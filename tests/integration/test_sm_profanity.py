"""Stream management with a real client: profanity (libstrophe, which
enables XEP-0198 with resumption) keeps its session when its TCP
connection is killed (`ss -K`, as a dropped network would), resumes it,
and shows the messages sent to it meanwhile.

Skipped when profanity, tmux or ss is not installed, or when ss cannot
kill sockets (it needs root)."""
import asyncio
import json
import os
import shutil
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, unique, find_lines
from test_muc_profanity import Profanity, PROFANITY, TMUX

SS = shutil.which('ss')

pytestmark = pytest.mark.skipif(PROFANITY is None or TMUX is None or SS is None or os.geteuid() != 0,
                                reason='needs profanity, tmux, and ss run as root')


@pytest.fixture
def profanity(tmp_path):
    p = Profanity(tmp_path)
    yield p
    p.close()


def session_of(server, jid_prefix):
    info = json.loads(server.ctl('--json', 'connected-users-info').stdout)
    mine = [s for s in info if s['jid'].startswith(jid_prefix)]
    assert len(mine) == 1, info
    return mine[0]


def test_profanity_resumes_after_a_killed_connection(server, run, profanity):
    async def go():
        bob = await parleytest.login(server, 'bob', resource=unique('sx-'))
        try:
            profanity.type('/reconnect 2')
            await profanity.login(server, 'alice')
            hello = unique('hello from profanity ')
            profanity.type('/msg bob@%s %s' % (HOST, hello))   # opens the chat window
            await parleytest.next_message(bob, pred=lambda m: m['body'] == hello, timeout=20)
            before = unique('before the drop ')
            bob.send_message(mto='alice@' + HOST, mbody=before, mtype='chat')
            await profanity.shows(before)
            deadline = time.monotonic() + 10
            while not find_lines('stream management enabled for alice@', server.log()):
                assert time.monotonic() < deadline, 'profanity did not enable stream management'
                await asyncio.sleep(0.2)
            s = session_of(server, 'alice@%s/' % HOST)
            # kill profanity's end of the connection (its source port)
            r = subprocess.run([SS, '-K', 'dst', '127.0.0.1', 'dport', '=', str(server.port),
                                'sport', '=', str(s['port'])], capture_output=True, text=True, timeout=20)
            assert r.returncode == 0, r.stderr
            while not find_lines('connection of %s lost' % s['jid'], server.log()):
                assert time.monotonic() < deadline + 10, 'the server did not see the drop'
                await asyncio.sleep(0.2)
            during = [unique('while away %d ' % i) for i in range(3)]
            for body in during:
                bob.send_message(mto=s['jid'], mbody=body, mtype='chat')
            # a round trip: the server has queued them for the detached session
            await parleytest.iq(bob, 'get', HOST, "<ping xmlns='urn:xmpp:ping'/>")
            assert not find_lines('session %s resumed' % s['jid'], server.log())
            deadline = time.monotonic() + 60
            while not find_lines('session %s resumed' % s['jid'], server.log()):
                assert time.monotonic() < deadline, 'profanity did not resume:\n' + profanity.screen()
                await asyncio.sleep(0.5)
            resumed = find_lines('session %s resumed' % s['jid'], server.log())
            assert 'resumed: 3 stanzas sent again' in resumed[0], resumed
            for body in during:
                await profanity.shows(body, timeout=20)
            screen = profanity.screen()
            assert screen.count(before) == 1, screen
            # the same session goes on both ways
            after = unique('typed after resuming ')
            profanity.type('/msg bob@%s %s' % (HOST, after))
            m = await parleytest.next_message(bob, pred=lambda m: m['body'] == after, timeout=20)
            assert str(m['from']) == s['jid']
        finally:
            await parleytest.logout(bob)
    run(go(), timeout=180)
