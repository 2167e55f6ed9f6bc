"""slapd lost while logins are going on: logins on the directory host run
without pause from several clients while the only slapd is killed
(SIGKILL, connections cut) and later started again.  test_ldap.py kills
the servers before logging in; here the kill lands in the middle of binds
and searches.  Every login ends quickly with success or a temporary
failure (never "not-authorized", never a hang), the internal host does not
notice, the log says what happened, and logins succeed again once slapd is
back, without restarting parleyd.  The map of fault tests is in
test_fault_db.py."""
import threading
import time

import pytest

from parleytest import HOST, find_lines
from test_ldap import ldap_block, ldap_built, plain, serve_with_slapd, start_slapd

pytestmark = pytest.mark.skipif(not ldap_built(), reason='parleyd built --without-ldap')

WORKERS = 3


@pytest.fixture
def one_slapd(tmp_path_factory):
    s = start_slapd(tmp_path_factory, 'slapd-fault')
    hosts = "  ldap.local:\n    auth: { methods: [ldap], ldap: %s }\n" % ldap_block([s.uri])

    def setup(srv):
        srv.create_users()
    yield from serve_with_slapd(tmp_path_factory, 'parley-ldap-fault', hosts, (s,), setup)


class Logins(threading.Thread):
    def __init__(self, srv, user, password, host):
        super().__init__(daemon=True)
        self.args = (srv, user, password, host)
        self.results = []       # (start, seconds, result)
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                r = plain(*self.args)
                self.results.append((t0, time.monotonic() - t0, r))
        except Exception as e:
            self.error = e


def test_slapd_killed_during_logins(one_slapd):
    srv = one_slapd
    slapd = srv.slapd
    ldap = [Logins(srv, 'ann', 'ann-secret', 'ldap.local') for _ in range(WORKERS)]
    internal = Logins(srv, 'alice', srv.password('alice'), HOST)
    for t in ldap + [internal]:
        t.start()
    try:
        # every client logged in once before the kill (slow under valgrind)
        deadline = time.monotonic() + 20
        while not all(any(r == ('success', None) for _, _, r in t.results) for t in ldap):
            assert time.monotonic() < deadline and not any(t.error for t in ldap), \
                [t.results[-3:] for t in ldap]
            time.sleep(0.1)
        killed = time.monotonic()
        slapd.kill()
        time.sleep(4)
        slapd.restart()
        back = time.monotonic()
        deadline = back + 30
        while not all(any(t0 > back and r == ('success', None) for t0, _, r in t.results)
                      for t in ldap):
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.2)
    finally:
        for t in ldap + [internal]:
            t.stop.set()
        for t in ldap + [internal]:
            t.join(30)
    for t in ldap + [internal]:
        assert t.error is None, t.error
    every = [x for t in ldap for x in t.results]
    assert all(r in (('success', None), ('failure', 'temporary-auth-failure')) for _, _, r in every), \
        sorted(set(r for _, _, r in every))
    # network_timeout 2 s, timeout 3 s: nothing hangs
    assert max(d for _, d, _ in every) < 10, max(d for _, d, _ in every)
    assert any(r == ('success', None) for t0, _, r in every if t0 < killed)
    assert any(r == ('failure', 'temporary-auth-failure') for t0, _, r in every
               if killed < t0 < back), 'no login saw the outage'
    assert internal.results and all(r == ('success', None) for _, _, r in internal.results), \
        sorted(set(r for _, _, r in internal.results))
    log = srv.log()
    assert find_lines(r'ldap auth ldap.local: ldap://\S+ is down', log), log[-3000:]
    assert find_lines(r'ldap password check for ann: (no LDAP server answered|every LDAP server '
                      r'is marked down)', log), log[-3000:]
    ups = find_lines(r'ldap auth ldap.local: ldap://\S+ is up', log)
    assert len(ups) >= 2, ups     # first contact, and again after the restart
    assert srv.running()
