"""Converse.js (npm, pinned) as a real web client in headless Chromium: it
logs in over WebSocket, and again over BOSH, and exchanges messages with a
slixmpp client; the test asserts on what the page shows.  The page is
served by python's http.server from a temporary folder (converse/ of this
folder and Converse's dist/); parleyd's http listener allows that origin
through http.cors_origins.  Screenshots go to tests/browser/artifacts."""
import asyncio
import functools
import http.server
import os
import threading
import time

import pytest

import parleytest
from conftest import Browser, BrowserError, node_env
from parleytest import HOST, login, logout


@pytest.fixture(scope='module')
def static(tmp_path_factory):
    """An http.server on 127.0.0.1 serving Converse's page; its port."""
    dist = node_env() / 'node_modules' / 'converse.js' / 'dist'
    if not dist.is_dir():
        pytest.skip('converse.js is not installed in %s (tests/browser/run.sh does it)' % node_env())
    root = tmp_path_factory.mktemp('converse-site')
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ('index.html', 'init.js'):
        (root / name).write_bytes(open(os.path.join(here, 'converse', name), 'rb').read())
    os.symlink(dist, root / 'dist')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                            functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope='module')
def srv(tmp_path_factory, static):
    s = parleytest.Parleyd(tmp_path_factory.mktemp('converse'))
    s.http_port = parleytest.free_port()
    text = s.config.read_text().replace(
        '\nlisten:\n',
        '\nhttp:\n  cors_origins: ["http://127.0.0.1:%d"]\n'
        'listen:\n  - { port: %d, address: 127.0.0.1, module: http, starttls: off }\n'
        % (static, s.http_port), 1)
    s.config.write_text(text)
    s.start_with_users()
    yield s
    s.finish()


def online(srv, jid_prefix, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = srv.ctl('connected-users').stdout
        if jid_prefix in out:
            return True
        time.sleep(0.3)
    return False


@pytest.mark.parametrize('transport', ['ws', 'bosh'])
def test_converse_chats_with_slixmpp(srv, static, run, transport):
    url = ('ws://127.0.0.1:%d/xmpp-websocket' if transport == 'ws'
           else 'http://127.0.0.1:%d/http-bind') % srv.http_port
    browser = Browser('converse-' + transport)
    bob = None
    try:
        page = ('http://127.0.0.1:%d/index.html?transport=%s&url=%s&jid=alice@%s&password=%s'
                % (static, transport, url, HOST, srv.password('alice')))
        assert browser.call('open', url=page)['status'] == 200
        assert online(srv, 'alice@%s/' % HOST), browser.call('console')['messages'][-30:]
        bob = run(login(srv, 'bob'))
        text = 'hello from slixmpp over %s' % transport
        # once Converse shows alice online, a message is counted beside bob
        # in the roster (sent again while it does not show: the first may
        # reach the session before Converse listens); opening the chat
        # shows it
        try:
            browser.call('wait', sel='text=I am online')
            deadline = time.monotonic() + 40
            while True:
                bob.send_message(mto='alice@' + HOST, mbody=text, mtype='chat')
                run(asyncio.sleep(0.3))  # let slixmpp's loop write it
                try:
                    browser.call('wait', sel='text=bob@%s' % HOST, timeout=4000)
                    break
                except BrowserError:
                    if time.monotonic() > deadline:
                        raise
            browser.call('click', sel='text=bob@%s' % HOST)
            shown = browser.call('wait', sel='.chat-msg__text', text=text)
        except Exception:
            browser.call('screenshot', name='converse-%s-failed' % transport)
            raise
        assert text in shown['text']
        browser.call('screenshot', name='converse-%s-received' % transport)
        reply = 'hello from converse over %s' % transport
        browser.call('fill', sel='textarea.chat-textarea', value=reply)
        browser.call('press', sel='textarea.chat-textarea', key='Enter')
        msg = run(wait_body(bob, reply), timeout=30)
        assert msg['from'].bare == 'alice@' + HOST
        browser.call('wait', sel='.chat-msg__text', text=reply)
        browser.call('screenshot', name='converse-%s-sent' % transport)
    finally:
        if bob is not None:
            run(logout(bob))
        browser.close()


async def wait_body(client, body):
    while True:
        m = await client.messages.get()
        if m['body'] == body:
            return m
