"""The pam method, through pam_wrapper: parley-pam-helper runs with
libpam_wrapper.so preloaded (only the helper: parleyd itself, which may be
an ASan build, never loads it) and a test service that uses pam_matrix.so
with a password file."""
import glob
import os
import subprocess

import pytest

import parleytest
from parleytest import HOST, NS_SASL, OTHER, RawClient, builddir, find_lines, q, srcdir, tostr, unique

PAM_WRAPPER = glob.glob('/usr/lib/*/libpam_wrapper.so') + glob.glob('/usr/lib/libpam_wrapper.so')
PAM_MATRIX = glob.glob('/usr/lib/*/pam_wrapper/pam_matrix.so')
# Linux-PAM's own pam_debug: answers the PAM result its arguments name
PAM_DEBUG = glob.glob('/lib/*/security/pam_debug.so') + glob.glob('/usr/lib/*/security/pam_debug.so')
HELPER = builddir() / 'parley-pam-helper'

pytestmark = pytest.mark.skipif(
    not PAM_WRAPPER or not PAM_MATRIX or not HELPER.exists(),
    reason='needs libpam-wrapper (pam_wrapper, pam_matrix) and a build with PAM (parley-pam-helper)')

INTERNAL_USERS = {k: v for k, v in parleytest.USERS.items() if k[1] == HOST}


@pytest.fixture(scope='module')
def pam(tmp_path_factory):
    srv = pam_server(tmp_path_factory, 'pam')
    yield srv
    srv.finish()


def pam_server(tmp_path_factory, name, auth_extra='', methods='pam', pam_extra='', service=None):
    """Started; OTHER's auth: methods [methods], pam through pam_wrapper,
    with auth_extra (more keys of OTHER's auth map, each followed by ', ')
    and pam_extra (more keys of its pam map, each preceded by ', ');
    service: the text of the PAM service (default: pam_matrix on the test
    passdb)."""
    d = tmp_path_factory.mktemp(name)
    services = d / 'pam.d'
    services.mkdir()
    passdb = d / 'passdb'
    passdb.write_text('pamela:pam-secret:parley\nsshonly:ssh-secret:sshd\n')
    tmpl = (srcdir() / 'tests' / 'integration' / 'pam' / 'parley.in').read_text()
    (services / 'parley').write_text(service if service is not None else
                                     tmpl.replace('@PAM_MATRIX@', PAM_MATRIX[0])
                                     .replace('@PASSDB@', str(passdb)))
    # the helper parleyd runs: pam_wrapper preloaded into it alone
    wrapped = d / 'pam-helper'
    wrapped.write_text('#!/bin/sh\n'
                       'LD_PRELOAD=%s PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=%s\n'
                       'export LD_PRELOAD PAM_WRAPPER PAM_WRAPPER_SERVICE_DIR\n'
                       'exec %s "$@"\n' % (PAM_WRAPPER[0], services, HELPER))
    wrapped.chmod(0o755)
    srv = parleytest.Parleyd(d, users=INTERNAL_USERS,
                             other_auth='{ methods: [%s], %spam: { helper: "%s", instances: 1, '
                                        'max_requests: 3, timeout: 5s%s } }'
                                        % (methods, auth_extra, wrapped, pam_extra))
    srv.start_with_users()
    return srv


def plain(srv, user, password, host=OTHER, mechs=('PLAIN',)):
    c = RawClient(srv.port, host=host)
    try:
        c.open()
        c.starttls()
        assert c.mechanisms() == list(mechs) or host != OTHER, c.mechanisms()
        el = c.auth_plain(user, password)
    finally:
        c.close()
    if el.tag == q(NS_SASL, 'success'):
        return 'success'
    return [parleytest.local(ch.tag) for ch in el if parleytest.local(ch.tag) != 'text'][0]


def test_good_password(pam):
    assert plain(pam, 'pamela', 'pam-secret') == 'success'


def test_bad_password(pam):
    assert plain(pam, 'pamela', 'wrong') == 'not-authorized'
    assert find_lines(r'auth failed: ip=127\.0\.0\.1 user=pamela@%s reason=bad-password' % OTHER,
                      pam.log())


def test_unknown_user(pam):
    assert plain(pam, 'nobody', 'whatever') == 'not-authorized'


def test_account_check_refuses_other_services_users(pam):
    """sshonly's password is right, but pam_matrix's account module allows
    it only for the sshd service."""
    assert plain(pam, 'sshonly', 'ssh-secret') == 'not-authorized'


def test_helper_is_replaced_after_max_requests(pam):
    for _ in range(7):
        assert plain(pam, 'pamela', 'pam-secret') == 'success'
    assert find_lines(r'auth pam: process 0 \(pid \d+\) served 3 requests; replacing it', pam.log())
    st = pam.ctl('status').stdout
    assert 'auth pam:' in st and '1/1 processes up' in st, st


def test_auth_test_through_pam(pam):
    r = pam.ctl('auth-test', 'pamela@' + OTHER, input='pam-secret\n')
    assert r.returncode == 0 and 'backend 1 pam: ok' in r.stdout, r.stdout + r.stderr
    r = pam.ctl('auth-test', 'pamela@' + OTHER, input='nope\n')
    assert r.returncode == 1 and 'backend 1 pam: bad password (the user exists)' in r.stdout, r.stdout
    r = pam.ctl('auth-test', 'nobody@' + OTHER, input='nope\n')
    assert r.returncode == 1 and 'backend 1 pam: unknown user' in r.stdout, r.stdout


def test_pam_cannot_register_or_change_passwords(pam):
    r = pam.ctl('register', 'newpam', OTHER, 'pw')
    assert r.returncode == 1 and 'not supported' in r.stderr, r.stderr
    r = pam.ctl('passwd', 'pamela', OTHER, 'pw')
    assert r.returncode == 1 and 'not supported' in r.stderr, r.stderr


def test_chain_with_internal_registers_only_free_names(tmp_path_factory):
    """[pam, internal]: a name PAM knows (pam_acct_mgmt) is taken, since an
    internal account of that name would let its password in; any other
    name becomes an internal account.  Without account_check PAM cannot
    tell, so no account is made at all."""
    mechs = ('SCRAM-SHA-512-PLUS', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-512',
             'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN')
    srv = pam_server(tmp_path_factory, 'pam-chain', methods='pam, internal')
    try:
        r = srv.ctl('register', 'pamela', OTHER, 'mallory-pw')
        assert r.returncode == 1 and 'exists' in r.stderr, (r.returncode, r.stderr)
        assert plain(srv, 'pamela', 'mallory-pw', mechs=mechs) == 'not-authorized'
        user = unique('pamnew')
        r = srv.ctl('register', user, OTHER, 'new-pw')
        assert r.returncode == 0, r.stderr
        assert plain(srv, user, 'new-pw', mechs=mechs) == 'success'
    finally:
        srv.finish()
    srv = pam_server(tmp_path_factory, 'pam-chain-unsure', methods='pam, internal',
                     pam_extra=', account_check: false')
    try:
        user = unique('pamnew')
        r = srv.ctl('register', user, OTHER, 'new-pw')
        assert r.returncode == 1 and 'not supported' in r.stderr, (r.returncode, r.stderr)
        assert find_lines(r'host %s: account %s not created: the pam method cannot tell whether the '
                          r'user exists' % (OTHER, user), srv.log()), srv.log()[-3000:]
        assert srv.ctl('user-exists', user, OTHER).returncode == 1
    finally:
        srv.finish()


def test_internal_host_next_to_pam(pam):
    assert plain(pam, 'alice', pam.password('alice'), host=HOST) == 'success'


def test_self_test_warns_without_shadow_access():
    """Run unprivileged against a service that uses pam_unix: the helper
    says at once that it cannot check other users' passwords."""
    if os.geteuid() != 0:
        pytest.skip('needs root to run the helper as another user')
    if os.access('/usr/bin/setpriv', os.X_OK) is False:
        pytest.skip('needs setpriv (util-linux)')
    import shutil
    import tempfile
    # a directory the unprivileged user can read (pytest's are private)
    services = tempfile.mkdtemp(prefix='parley-pam-', dir='/tmp')
    try:
        os.chmod(services, 0o755)
        with open(os.path.join(services, 'parley-unix'), 'w') as f:
            f.write('auth required pam_unix.so\naccount required pam_unix.so\n')
        os.chmod(os.path.join(services, 'parley-unix'), 0o644)
        env = dict(os.environ, PAM_WRAPPER_SERVICE_DIR=services)
        r = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', str(HELPER),
                            'parley-unix', 'account'], input=b'', capture_output=True, timeout=20,
                           env=env)
    finally:
        shutil.rmtree(services)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert 'uses pam_unix but uid 65534 cannot read /etc/shadow' in err, err


def test_scram_keys_kept_from_pam_logins(tmp_path_factory):
    """auth.scram_cache_ttl on a pam host: SCRAM-SHA-256 offered before
    PLAIN; a PLAIN login PAM accepted keeps keys, then SCRAM-SHA-256 works;
    a wrong password leaves them, PAM refusing the password they were made
    from drops them."""
    from scramclient import Client, scram
    from test_scram_sha512 import _wait_log
    srv = pam_server(tmp_path_factory, 'pam-scramcache', 'scram_cache_ttl: 30s, ')
    try:
        def scram_ok():
            c = Client(srv.port, host=OTHER)
            try:
                c.open()
                c.starttls()
                assert c.mechanisms() == ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN'], c.mechanisms()
                return scram(c, 'pamela', 'pam-secret', 'SCRAM-SHA-256', 'n,,').ok
            finally:
                c.close()
        assert not scram_ok()
        offered = ('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN')
        assert plain(srv, 'pamela', 'pam-secret', mechs=offered) == 'success'
        assert _wait_log(srv, r'pamela: SCRAM keys kept for 30 s from the password the pam method accepted')
        assert scram_ok()
        assert plain(srv, 'pamela', 'wrong', mechs=offered) == 'not-authorized'
        assert scram_ok(), 'a wrong password dropped the kept keys'
        # the password changed in PAM's database: its refusal drops them
        (srv.dir / 'passdb').write_text('pamela:pam-new:parley\n')
        assert plain(srv, 'pamela', 'pam-secret', mechs=offered) == 'not-authorized'
        assert _wait_log(srv, r'pamela: kept SCRAM keys dropped')
        assert not scram_ok()
    finally:
        srv.finish()


def debug_service(code):
    """A PAM service whose auth and account stacks answer PAM_<CODE>."""
    return ('auth     required %s auth=%s\naccount  required %s acct=%s\n'
            % (PAM_DEBUG[0], code, PAM_DEBUG[0], code))


def run_helper(tmp_path, service, *requests):
    """Run the helper under pam_wrapper with this service; returns its exit
    status, its replies (4 bytes each) and its stderr."""
    services = tmp_path / 'pam.d'
    services.mkdir()
    (services / 'parley').write_text(service)
    env = dict(os.environ, LD_PRELOAD=PAM_WRAPPER[0], PAM_WRAPPER='1',
               PAM_WRAPPER_SERVICE_DIR=str(services))
    frames = b''.join(len(r).to_bytes(2, 'big') + r.encode() for r in requests)
    r = subprocess.run([str(HELPER), 'parley', 'account'], input=frames, capture_output=True,
                       timeout=20, env=env)
    return r.returncode, [r.stdout[i:i + 4] for i in range(0, len(r.stdout), 4)], r.stderr.decode()


REPLY = {'yes': b'\0\x02\0\x01', 'no': b'\0\x02\0\0', 'tempfail': b'\0\x02\0\x02'}


@pytest.mark.skipif(not PAM_DEBUG, reason='needs pam_debug.so (libpam-modules)')
@pytest.mark.parametrize('code, answer', [
    # PAM could not find out: its service unreachable, a module or system error
    ('authinfo_unavail', 'tempfail'), ('system_err', 'tempfail'), ('service_err', 'tempfail'),
    ('buf_err', 'tempfail'), ('conv_err', 'tempfail'), ('module_unknown', 'tempfail'),
    ('cred_unavail', 'tempfail'), ('try_again', 'tempfail'),
    # PAM refused the password, the user or the account
    ('auth_err', 'no'), ('user_unknown', 'no'), ('maxtries', 'no'), ('cred_insufficient', 'no'),
    ('perm_denied', 'no'), ('acct_expired', 'no'), ('new_authtok_reqd', 'no'), ('authtok_expired', 'no'),
    ('success', 'yes'),
])
def test_helper_tells_a_pam_failure_from_a_refusal(tmp_path, code, answer):
    """auth and isuser: a refusal is "no", anything else PAM answers
    instead of a decision is "temporary failure" (2), never "no"."""
    rc, replies, err = run_helper(tmp_path, debug_service(code), 'auth:pamela:%s:pam-secret' % OTHER,
                                  'isuser:pamela:%s' % OTHER)
    assert rc == 0 and replies == [REPLY[answer]] * 2, (replies, err)
    if answer == 'tempfail':
        assert 'pam_authenticate for pamela: ' in err and '(temporary failure)' in err, err


@pytest.mark.skipif(not PAM_DEBUG, reason='needs pam_debug.so (libpam-modules)')
def test_helper_leaves_after_pam_abort(tmp_path):
    """PAM_ABORT: the application must stop; the helper answers
    "temporary failure", then leaves without reading the next request."""
    rc, replies, err = run_helper(tmp_path, debug_service('abort'),
                                  'auth:pamela:%s:pam-secret' % OTHER, 'isuser:pamela:%s' % OTHER)
    assert rc == 1 and replies == [REPLY['tempfail']], (rc, replies, err)
    assert 'PAM_ABORT: leaving' in err, err


@pytest.mark.skipif(not PAM_DEBUG, reason='needs pam_debug.so (libpam-modules)')
def test_unreachable_pam_service_is_a_temporary_failure(tmp_path_factory):
    """A module whose server is down (pam_sss, pam_ldap, pam_krb5 answer
    PAM_AUTHINFO_UNAVAIL): <temporary-auth-failure/>, not counted as a
    failed login, "cannot tell" for user-exists, and the helper stays."""
    from test_scram_sha512 import _wait_log
    srv = pam_server(tmp_path_factory, 'pam-unavail', service=debug_service('authinfo_unavail'))
    try:
        assert plain(srv, 'pamela', 'pam-secret') == 'temporary-auth-failure'
        log = srv.log()
        assert find_lines(r'authentication backend unavailable for pamela@%s: '
                          r'<temporary-auth-failure/> \(not counted' % OTHER, log), log[-3000:]
        assert not find_lines(r'auth failed: .*user=pamela@', log), log[-3000:]
        assert _wait_log(srv, r'auth pam \[pid \d+\] stderr: pam_authenticate for pamela: '
                              r'Authentication service cannot retrieve authentication info'), \
            srv.log()[-3000:]
        r = srv.ctl('user-exists', 'pamela', OTHER)
        assert r.returncode != 0 and 'cannot tell whether pamela@%s exists: temporary failure' % OTHER \
            in r.stderr, r.stdout + r.stderr
        r = srv.ctl('auth-test', 'pamela@' + OTHER, input='pam-secret\n')
        assert 'backend 1 pam: unreachable or too slow: temporary failure' in r.stdout, \
            r.stdout + r.stderr
        # a good answer: the helper was not taken for a failed process
        st = srv.ctl('status').stdout
        assert '1/1 processes up' in st, st
        assert not find_lines(r'auth pam: process \d+ \(pid \d+\): ', srv.log()), srv.log()[-3000:]
    finally:
        srv.finish()
