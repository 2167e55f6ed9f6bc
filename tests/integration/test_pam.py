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


def pam_server(tmp_path_factory, name, auth_extra='', methods='pam', pam_extra=''):
    """Started; OTHER's auth: methods [methods], pam through pam_wrapper,
    with auth_extra (more keys of OTHER's auth map, each followed by ', ')
    and pam_extra (more keys of its pam map, each preceded by ', ')."""
    d = tmp_path_factory.mktemp(name)
    services = d / 'pam.d'
    services.mkdir()
    passdb = d / 'passdb'
    passdb.write_text('pamela:pam-secret:parley\nsshonly:ssh-secret:sshd\n')
    tmpl = (srcdir() / 'tests' / 'integration' / 'pam' / 'parley.in').read_text()
    (services / 'parley').write_text(tmpl.replace('@PAM_MATRIX@', PAM_MATRIX[0])
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
