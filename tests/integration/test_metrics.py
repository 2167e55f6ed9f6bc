"""/metrics over a real http listener: the exposition parses with the
Prometheus client library's parser, every family has one TYPE, the
figures move (connections while a client is connected, sessions, stanzas,
auth answers by backend and result, worker job times), other methods get
405, and an address outside metrics.allow (and http_api.allow) gets 403.

Needs server/http.c (the HTTP listener); without it the file is skipped."""
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from httpapi import request, start_http_server
from parleytest import HOST, NS_SASL, RawClient, q


@pytest.fixture(scope='module')
def metrics_server(tmp_path_factory):
    srv = start_http_server(tmp_path_factory, 'parley-metrics')
    yield srv
    srv.finish()


def scrape(srv):
    status, headers, data = request(srv, 'GET', '/metrics')
    assert status == 200, (status, data)
    assert headers['content-type'].startswith('text/plain; version=0.0.4'), headers
    text = data.decode()
    types = [ln.split()[2] for ln in text.splitlines() if ln.startswith('# TYPE ')]
    assert len(types) == len(set(types)), 'a family with two TYPE lines'
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, ('duplicate series', key)
            samples[key] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def wait_for(srv, pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = scrape(srv)
        if pred(s):
            return s
        time.sleep(0.1)
    raise AssertionError('metrics: %s not seen within %ss' % (what, timeout))


def _login(srv, user, password):
    c = RawClient(srv.port)
    c.open()
    c.starttls()
    ok = c.auth_plain(user, password).tag == q(NS_SASL, 'success')
    return c, ok


def test_families(metrics_server):
    s = scrape(metrics_server)
    assert value(s, 'parley_up') == 1
    assert value(s, 'parley_connections', kind='c2s') is not None
    assert value(s, 'parley_sessions', host=HOST) is not None
    assert value(s, 'parley_stanzas_in_total', kind='message') is not None
    assert value(s, 'parley_memory_rss_bytes') > 1024 * 1024
    assert value(s, 'parley_loop_iteration_seconds_count') > 0
    groups = [dict(k[1])['group'] for k in s if k[0] == 'parley_worker_job_seconds_count']
    assert groups, 'no worker group'
    # a histogram's buckets never decrease and end with the count
    for g in groups:
        buckets = sorted(((float(dict(k[1])['le']), v) for k, v in s.items()
                          if k[0] == 'parley_worker_job_seconds_bucket' and dict(k[1])['group'] == g))
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
        assert buckets[-1][1] == value(s, 'parley_worker_job_seconds_count', group=g)


def test_figures_move(metrics_server):
    srv = metrics_server
    before = scrape(srv)
    ok_before = value(before, 'parley_auth_answers_total', host=HOST, backend='internal',
                      question='password', result='ok') or 0
    bad_before = value(before, 'parley_auth_answers_total', host=HOST, backend='internal',
                       question='password', result='bad password') or 0
    c, ok = _login(srv, 'alice', srv.password('alice'))
    assert ok
    try:
        wait_for(srv, lambda s: value(s, 'parley_connections', kind='c2s') >= 1, 'a c2s connection')
        wait_for(srv, lambda s: (value(s, 'parley_auth_answers_total', host=HOST, backend='internal',
                                       question='password', result='ok') or 0) > ok_before,
                 'a successful login')
    finally:
        c.close()
    c, ok = _login(srv, 'bob', 'not-his-password')
    c.close()
    assert not ok
    wait_for(srv, lambda s: (value(s, 'parley_auth_answers_total', host=HOST, backend='internal',
                                   question='password', result='bad password') or 0) > bad_before,
             'a failed login')
    jobs = sum(v for k, v in before.items() if k[0] == 'parley_worker_job_seconds_count')
    wait_for(srv, lambda s: sum(v for k, v in s.items()
                                if k[0] == 'parley_worker_job_seconds_count') > jobs,
             'storage jobs counted')


def test_methods(metrics_server):
    status, headers, _ = request(metrics_server, 'POST', '/metrics', b'x')
    assert status == 405 and 'GET' in headers.get('allow', ''), (status, headers)
    status, _, _ = request(metrics_server, 'GET', '/metrics/other')
    assert status == 404


def test_address_not_allowed(tmp_path_factory):
    srv = start_http_server(tmp_path_factory, 'parley-metrics-deny',
                            metrics_allow='[192.0.2.0/24]', api_allow='[192.0.2.0/24]')
    try:
        status, _, _ = request(srv, 'GET', '/metrics')
        assert status == 403
        r = srv.ctl('api-token-create', 'deny-test', 'all')
        assert r.returncode == 0, r.stderr
        status, _, _ = request(srv, 'GET', '/api/', token=r.stdout.strip())
        assert status == 403
        assert 'scrape from 127.0.0.1 refused' in srv.log()
    finally:
        srv.finish()


@pytest.fixture(scope='module')
def counts_server(tmp_path_factory):
    srv = start_http_server(tmp_path_factory, 'parley-metrics-counts',
                            metrics_extra='  store_counts_interval: 1s\n')
    yield srv
    srv.finish()


def test_registered_users_and_offline_queue_per_host(counts_server):
    """parley_registered_users and parley_offline_messages per host, as the
    store counts them: they follow registrations and messages stored
    offline, within store_counts_interval, and a scrape never waits for
    the store (the first one may come before any count)."""
    srv = counts_server
    users = {h: len([1 for (u, hh) in srv.users if hh == h]) for (_, h) in srv.users}
    s = wait_for(srv, lambda s: all(value(s, 'parley_registered_users', host=h) == n
                                    for h, n in users.items()), 'registered users per host')
    assert value(s, 'parley_offline_messages', host=HOST) == 0
    r = srv.ctl('register', 'zed', HOST, 'zed-pw')
    assert r.returncode == 0, r.stderr
    for i in range(3):
        r = srv.ctl('send-message', 'alice@' + HOST, 'zed@' + HOST, 'for zed %d' % i)
        assert r.returncode == 0, r.stderr
    s = wait_for(srv, lambda s: value(s, 'parley_offline_messages', host=HOST) == 3 and
                 value(s, 'parley_registered_users', host=HOST) == users[HOST] + 1,
                 'the new account and its 3 offline messages')
    # counted at most once a second however often it is scraped: a burst of
    # scrapes starts at most two rounds of counts (one per host and figure)
    def jobs(s):
        return sum(v for (name, labels), v in s.items() if name == 'parley_worker_job_seconds_count')
    before = jobs(scrape(srv))
    assert before > 0
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 0.5:
        last = scrape(srv)
        n += 1
    assert n > 5
    hosts = len(users)
    assert jobs(last) - before <= 2 * 2 * hosts, (n, jobs(last) - before)
    # the queue empties when zed logs in; the figure follows
    with RawClient(srv.port) as c:
        c.login('zed', 'zed-pw', presence=False)
        c.send('<presence/>')
        for i in range(3):
            c.wait_message('for zed %d' % i)
    wait_for(srv, lambda s: value(s, 'parley_offline_messages', host=HOST) == 0, 'an empty queue')
