/*
 * BOSH (XEP-0124, XEP-0206): client sessions over HTTP long-polling at
 * http.bosh_path, run by the same client state machine as TCP and
 * WebSocket streams.  Loop thread.
 */
#ifndef PARLEY_BOSH_H
#define PARLEY_BOSH_H

/* Mount the BOSH endpoint (when http.bosh is on); from http_start. */
void http_bosh_start(void);
/* BOSH sessions open now. */
unsigned bosh_count(void);

#endif
