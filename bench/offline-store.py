#!/usr/bin/python3
# Offline-message store throughput (the shared harness has no offline scenario).
# S senders u1..uS@bench.local (password "pass") log in over STARTTLS; each sends
# M chat messages as fast as it can to its own recipient u1000+i, who is offline;
# the time runs until the store holds all of them (COUNT_CMD prints the number
# of rows of offline_messages) or until every missing one came back as an error.
#   usage: offline-store.py PORT LABEL S M COUNT_CMD
# Run by bench/storage.sh.
import asyncio, ssl, sys, time, subprocess, slixmpp
port, kind, S, M = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
count_cmd = sys.argv[5]   # shell command printing the row count
errors = 0
async def sender(i):
    global errors
    c = slixmpp.ClientXMPP(f'u{i+1}@bench.local/b', 'pass')
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    ready = asyncio.Event()
    c.add_event_handler('session_start', lambda _: ready.set())
    def on_err(msg):
        global errors
        errors += 1
    c.add_event_handler('message_error', on_err)
    c.connect(address=('127.0.0.1', port), force_starttls=True)
    await asyncio.wait_for(ready.wait(), 30)
    return c
def count():
    return int(subprocess.run(count_cmd, shell=True, capture_output=True, text=True).stdout.strip() or 0)
async def main():
    cs = await asyncio.gather(*[sender(i) for i in range(S)])
    base = count()
    t0 = time.monotonic()
    for k in range(M):
        for i, c in enumerate(cs):
            c.send_message(mto=f'u{1000+i}@bench.local', mbody=f'offline {k} ' + 'x' * 40, mtype='chat')
        if k % 50 == 49:
            await asyncio.sleep(0)
    sent = time.monotonic() - t0
    n = 0
    while time.monotonic() - t0 < 300:
        n = count() - base
        if n >= S * M or n + errors >= S * M:
            break
        await asyncio.sleep(0.05)
    dt = time.monotonic() - t0
    print(f'{kind}: {n} of {S*M} stored in {dt:.2f} s = {n/dt:.0f} msgs/s (sending took {sent:.2f} s), errors {errors}')
    for c in cs:
        c.disconnect()
    await asyncio.sleep(0.5)
asyncio.run(main())
