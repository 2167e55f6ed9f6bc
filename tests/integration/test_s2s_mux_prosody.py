"""Interop of s2s multiplexing with Prosody 0.12: Parley serves two
domains (the IP literals 127.0.0.1 and 127.0.0.2, since Prosody has no
static host map and finds them by their address, on port 5269); once
127.0.0.1's stream to Prosody works, 127.0.0.2 asks Prosody on the same
stream with a further <db:result/> (XEP-0220 piggybacking).  Prosody
checks it by dialing back to 127.0.0.2 and then takes 127.0.0.2's
stanzas on the shared stream."""
import shutil

import pytest

from parleytest import FedParleyd, default_s2s_port, free_port, login, logout, next_message, started, unique
from test_s2s_prosody import PROSODY, Prosody, port_free

P1, P2 = '127.0.0.1', '127.0.0.2'

pytestmark = pytest.mark.skipif(shutil.which('prosody') is None,
                                reason='prosody is not installed (apt-get install prosody)')


class TwoAddressParleyd(FedParleyd):
    """s2s listeners on 127.0.0.1 and 127.0.0.2, port 5269."""

    def write_config(self):
        super().write_config()
        text = self.config.read_text()
        text = text.replace('listen:\n', 'listen:\n  - port: 5269\n    address: %s\n'
                            '    module: s2s\n' % P2, 1)
        self.config.write_text(text)


@pytest.fixture(scope='module')
def peers(tmp_path_factory):
    with default_s2s_port():
        yield from _peers(tmp_path_factory)


def _peers(tmp_path_factory):
    if not port_free(5269) or not port_free(5269, P2):
        pytest.skip('port 5269 (where Prosody looks for our domains) is taken')
    base = tmp_path_factory.mktemp('s2s-mux-prosody')
    pp = free_port()
    prosody = Prosody(base / 'prosody', pp, {'carl': 'carl-secret'})
    parley = TwoAddressParleyd(base / 'parley', P1,
                               {('alice', P1): 'alice-secret', ('ada', P2): 'ada-secret'},
                               peers={PROSODY: pp}, s2s_port=5269, more_domains=[P2],
                               s2s={'connect_timeout': '10s'})
    with started(parley, prosody):
        yield parley, prosody


def test_second_domain_rides_on_the_stream_to_prosody(peers, run):
    parley, prosody = peers

    async def go():
        alice = await login(parley, 'alice', host=P1, resource='x')
        ada = await login(parley, 'ada', host=P2, resource='x')
        carl = await login(prosody, 'carl', host=PROSODY, resource='x', password='carl-secret')
        for who in (alice, ada):
            body = unique('to prosody ')
            who.send_message(mto='carl@' + PROSODY, mbody=body, mtype='chat')
            m = await next_message(carl, pred=lambda m, body=body: m['body'] == body, timeout=20)
            assert m['from'] == who.boundjid
        back = unique('from prosody ')
        carl.send_message(mto=str(ada.boundjid), mbody=back, mtype='chat')
        await next_message(ada, pred=lambda m: m['body'] == back, timeout=20)
        await logout(alice, ada, carl)
    run(go(), timeout=90)
    rows = [ln.split('\t') for ln in parley.ctl('s2s-list').stdout.splitlines()]
    outs = {(r[1], r[2]): r for r in rows if r[0] == 'out'}
    assert (PROSODY, P1) in outs and (PROSODY, P2) in outs, rows
    assert outs[(PROSODY, P1)][7] == outs[(PROSODY, P2)][7] != '-', rows
    assert outs[(PROSODY, P2)][4] == 'dialback', rows
    assert '127.0.0.2 -> prosody.test: asking to share the stream of 127.0.0.1 -> prosody.test' \
        in parley.log()
