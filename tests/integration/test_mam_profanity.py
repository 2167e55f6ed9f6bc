"""The message archive with a real client: profanity (libstrophe) with
`/mam on` fetches a conversation's history from the archive when it opens
the chat window, and shows messages it never received itself.

The messages go to another session of the same account while profanity is
not connected, so they are not stored offline: only the archive has them
for profanity.  Skipped when profanity or tmux is not installed."""
import asyncio
import time

import pytest

import parleytest
from parleytest import HOST, unique, find_lines
from test_muc_profanity import Profanity, PROFANITY, TMUX

pytestmark = pytest.mark.skipif(PROFANITY is None or TMUX is None, reason='needs profanity and tmux')


@pytest.fixture
def profanity(tmp_path):
    p = Profanity(tmp_path)
    yield p
    p.close()


def test_profanity_shows_the_archive(server, run, profanity):
    async def go():
        bob = await parleytest.login(server, 'bob', resource=unique('mb-'))
        alice = await parleytest.login(server, 'alice', resource=unique('ma-'))
        try:
            bodies = [unique('archived %d ' % i) for i in range(3)]
            for body in bodies:
                bob.send_message(mto='alice@' + HOST, mbody=body, mtype='chat')
            for body in bodies:   # alice's other session took them: nothing offline
                await parleytest.next_message(alice, pred=lambda m, b=body: m['body'] == b, timeout=20)
            reply = unique('archived reply ')
            alice.send_message(mto='bob@' + HOST, mbody=reply, mtype='chat')
            await parleytest.next_message(bob, pred=lambda m: m['body'] == reply, timeout=20)
            rows = server.db_query("SELECT count(*) FROM offline_messages WHERE username = 'alice'")
            assert rows[0][0] == 0, rows

            await profanity.login(server, 'alice')
            profanity.type("/mam on")
            profanity.type('/msg bob@%s' % HOST)   # opens the window: the history comes from the archive
            for body in bodies + [reply]:
                await profanity.shows(body, timeout=30)
            deadline = time.monotonic() + 10
            while not find_lines('mam: query of the archive of alice@%s by alice@%s' % (HOST, HOST),
                                 server.log()):
                assert time.monotonic() < deadline, 'no archive query in the log'
                await asyncio.sleep(0.2)
        finally:
            bob.disconnect()
            alice.disconnect()
    run(go(), timeout=150)
