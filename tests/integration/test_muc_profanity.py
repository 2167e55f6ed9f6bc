"""A person at a terminal: profanity, a console XMPP client, run in a
detached tmux session and driven key by key as somebody would type, talks
with a slixmpp client, first in a chat and then in a multi-user chat room.
What profanity shows is read back with `tmux capture-pane`.

Skipped when profanity or tmux is not installed (scripts/deps.sh test
installs both)."""
import asyncio
import os
import shutil
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, unique
from test_muc import SERVICE

PROFANITY = shutil.which('profanity')
TMUX = shutil.which('tmux')

pytestmark = pytest.mark.skipif(PROFANITY is None or TMUX is None,
                                reason='profanity or tmux not installed (scripts/deps.sh test installs them)')


class Profanity:
    """profanity in a tmux server of its own (its own socket, so nothing
    else of the user's tmux is touched), with a HOME and XDG directories
    of its own."""

    def __init__(self, workdir):
        self.dir = workdir
        self.sock = unique('parley-prof-')
        home = workdir / 'home'
        self.env = dict(os.environ)
        for var, sub in (('HOME', ''), ('XDG_CONFIG_HOME', '.config'), ('XDG_DATA_HOME', '.local/share'),
                         ('XDG_CACHE_HOME', '.cache'), ('XDG_RUNTIME_DIR', 'run')):
            d = home / sub if sub else home
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
            self.env[var] = str(d)
        self.env['TERM'] = 'xterm-256color'
        self.env['LANG'] = self.env['LC_ALL'] = 'C.UTF-8'
        self.env.pop('TMUX', None)
        self._tmux('new-session', '-d', '-s', 'prof', '-x', '200', '-y', '50', PROFANITY)

    def _tmux(self, *args):
        r = subprocess.run([TMUX, '-L', self.sock] + list(args), env=self.env, capture_output=True,
                           text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, ('tmux', args, r.returncode, r.stderr)
        return r.stdout

    def type(self, line):
        """Type line (literally) and press Enter, as a person would."""
        self._tmux('send-keys', '-t', 'prof', '-l', line)
        time.sleep(0.1)
        self._tmux('send-keys', '-t', 'prof', 'Enter')

    def screen(self):
        return self._tmux('capture-pane', '-p', '-J', '-t', 'prof', '-S', '-500')

    async def shows(self, text, timeout=20):
        """Poll the screen until text is on it; returns the screen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if text in s:
                return s
            await asyncio.sleep(0.2)
        raise AssertionError('profanity never showed %r; the screen:\n%s' % (text, self.screen()))

    async def login(self, server, user):
        await self.shows("Type '/help'")
        self.type('/connect %s@%s server 127.0.0.1 port %d tls trust' % (user, HOST, server.port))
        await self.shows('Enter password')
        self.type(server.password(user))
        await self.shows('logged in successfully')

    def close(self):
        subprocess.run([TMUX, '-L', self.sock, 'kill-server'], env=self.env, capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL)


@pytest.fixture
def profanity(tmp_path):
    p = Profanity(tmp_path)
    yield p
    p.close()


def test_profanity_chat(server, run, profanity):
    """The mechanics: profanity logs in and exchanges a chat message."""
    async def go():
        bob = await parleytest.login(server, 'bob', resource=unique('sx-'))
        try:
            await profanity.login(server, 'alice')
            line = unique('typed in profanity ')
            profanity.type('/msg bob@%s %s' % (HOST, line))
            m = await parleytest.next_message(bob, pred=lambda m: m['body'] == line, timeout=20)
            assert m['from'].bare == 'alice@' + HOST
            reply = unique('answer from slixmpp ')
            bob.send_message(mto=m['from'], mbody=reply, mtype='chat')
            await profanity.shows(reply)
        finally:
            await parleytest.logout(bob)
    run(go(), timeout=120)


def test_profanity_in_a_room(server, run, profanity):
    """A person joins a room with profanity's /join, says something, the
    slixmpp occupant hears it and answers, and the answer shows up."""
    async def go():
        bob = await parleytest.login(server, 'bob', resource=unique('sx-'))
        bob.register_plugin('xep_0045')
        try:
            room = '%s@%s' % (unique('prof'), SERVICE)
            created = asyncio.get_running_loop().create_future()
            bob.add_event_handler('muc::%s::self-presence' % room,
                                  lambda p: created.done() or created.set_result(p))
            bob['xep_0045'].join_muc(room, 'bob')
            await asyncio.wait_for(created, 10)
            form = await bob['xep_0045'].get_room_config(room)
            form['type'] = 'submit'
            await bob['xep_0045'].set_room_config(room, form)

            joined = asyncio.get_running_loop().create_future()
            bob.add_event_handler('muc::%s::got_online' % room,
                                  lambda p: joined.done() or p['muc']['nick'] != 'carol' or joined.set_result(p))
            heard = asyncio.Queue()
            bob.add_event_handler('muc::%s::message' % room, heard.put_nowait)

            await profanity.login(server, 'carol')
            profanity.type('/join %s nick carol' % room)
            await asyncio.wait_for(joined, 20)
            await profanity.shows('You have joined the room as carol')

            line = unique('hello room from a terminal ')
            profanity.type(line)
            deadline = time.monotonic() + 20
            while True:
                m = await asyncio.wait_for(heard.get(), max(0.1, deadline - time.monotonic()))
                if m['body'] == line:
                    break
            assert m['from'] == room + '/carol', m
            assert m['type'] == 'groupchat'
            reply = unique('the room answers ')
            bob.send_message(mto=room, mbody=reply, mtype='groupchat')
            await profanity.shows(reply)
            await bob['xep_0045'].destroy(room, reason='done')
        finally:
            await parleytest.logout(bob)
    run(go(), timeout=180)
