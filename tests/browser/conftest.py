"""pytest fixtures of the browser tests: the integration helpers
(tests/integration/parleytest.py), an asyncio loop for slixmpp, and a
Chromium driven by playwright-core through driver.mjs."""
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'integration'))

import parleytest  # noqa: E402


def node_env():
    """The folder holding node_modules/playwright-core and driver.mjs
    (tests/browser/run.sh installs them in the build dir)."""
    env = os.environ.get('PARLEY_BROWSER_ENV')
    return Path(env) if env else parleytest.builddir() / 'tests' / 'browser' / 'node-env'


def artifacts_dir():
    d = os.environ.get('ARTIFACTS')
    d = Path(d) if d else parleytest.builddir() / 'tests' / 'browser' / 'artifacts'
    d.mkdir(parents=True, exist_ok=True)
    return d


class BrowserError(Exception):
    pass


class Browser:
    """One headless Chromium page; call(op, **args) runs one driver.mjs
    request and returns its answer (BrowserError when it failed)."""

    def __init__(self, name, timeout=60):
        env_dir = node_env()
        if not (env_dir / 'node_modules' / 'playwright-core').is_dir():
            pytest.skip('playwright-core is not installed in %s (tests/browser/run.sh does it)' % env_dir)
        if shutil.which('node') is None:
            pytest.skip('node is not installed')
        shutil.copy(HERE / 'driver.mjs', env_dir / 'driver.mjs')
        self.timeout = timeout
        self.artifacts = artifacts_dir()
        self.stderr = open(self.artifacts / ('%s-driver.log' % name), 'w')
        env = dict(os.environ, ARTIFACTS=str(self.artifacts))
        self.proc = subprocess.Popen(['node', 'driver.mjs'], cwd=str(env_dir), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.buf = b''

    def _line(self):
        deadline = time.monotonic() + self.timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError('no answer from the browser driver in %ss' % self.timeout)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise BrowserError('the browser driver exited (see %s)' % self.stderr.name)
                self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def call(self, op, **args):
        args['op'] = op
        self.proc.stdin.write((json.dumps(args) + '\n').encode())
        self.proc.stdin.flush()
        answer = self._line()
        if not answer.pop('ok'):
            raise BrowserError('%s %r: %s' % (op, args, answer.get('error')))
        return answer

    def text(self, sel):
        return self.call('text', sel=sel)['text']

    def wait_text(self, url, sel, pred, timeout=20):
        """Reload url until the text of sel satisfies pred; that text."""
        deadline = time.monotonic() + timeout
        while True:
            self.call('open', url=url)
            t = self.text(sel)
            if pred(t) or time.monotonic() > deadline:
                return t
            time.sleep(0.3)

    def close(self):
        try:
            self.proc.stdin.write(b'{"op": "quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


@pytest.fixture
def loop():
    """A new asyncio loop per test (slixmpp binds to the current loop)."""
    with parleytest.event_loop() as lp:
        yield lp


@pytest.fixture
def run(loop):
    """run(coro, timeout=30): run a coroutine on the test's loop, bounded."""
    return parleytest.runner(loop)
