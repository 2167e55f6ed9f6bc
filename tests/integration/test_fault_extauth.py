"""The external auth program crashing in a loop: every request kills it
(SIGSEGV).  Its users get a temporary failure (never "not-authorized",
never a hang), users of other hosts keep logging in, the log says what
happens, the restarts back off instead of spinning, and once the program
is fixed its users log in again without restarting parleyd.  The map of
fault tests is in test_fault_db.py."""
import re
import time

from parleytest import HOST, OTHER, find_lines
from test_extauth import EXT_USERS, FAULTY, condition, ext_server, plain_login


def restarts(srv):
    st = srv.ctl('status').stdout
    m = re.search(r'(\d+) restarts', st)
    assert m, st
    return int(m.group(1))


def test_program_crashing_on_every_request(tmp_path_factory):
    d = tmp_path_factory.mktemp('ext-crashloop-flag')
    flag = d / 'broken'
    flag.write_text('crash\n')
    srv = ext_server(tmp_path_factory, 'ext-crashloop', FAULTY, ['crash-while', str(flag)],
                     instances=2, timeout='2s', extra=', restart_max: 2s, cache_ttl: 0')
    try:
        t0 = time.monotonic()
        rounds = 0
        while time.monotonic() - t0 < 8:
            t = time.monotonic()
            assert condition(plain_login(srv, 'xena', EXT_USERS['xena'])) == 'temporary-auth-failure'
            assert time.monotonic() - t < 6, 'a login took %.1f s' % (time.monotonic() - t)
            # the internal host does not notice
            assert condition(plain_login(srv, 'alice', srv.password('alice'), host=HOST)) == 'success'
            rounds += 1
        assert rounds >= 3
        n = restarts(srv)
        # back-off: 0.1 s doubling up to 2 s, per pool: a handful in 8 s, not hundreds
        assert 2 <= n <= 25, n
        log = srv.log()
        assert find_lines(r'auth external: process \d+ \(pid \d+\): killed by signal 11', log), log[-3000:]
        assert find_lines(r'stderr: crashing on a request', log), log[-3000:]
        assert find_lines(r'restarting process \d+ in 2\.0 s', log), log[-3000:]

        # fixed: within the back-off its users log in again
        flag.unlink()
        deadline = time.monotonic() + 15
        while condition(plain_login(srv, 'xena', EXT_USERS['xena'])) != 'success':
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.5)
        assert condition(plain_login(srv, 'xena', 'wrong')) == 'not-authorized'
        assert condition(plain_login(srv, 'zoe', EXT_USERS['zoe'], host=OTHER)) == 'success'
        assert srv.running()
    finally:
        srv.finish()
