/*
 * XEP-0025 HTTP polling (obsolete; for old clients) at http.http_poll_path,
 * off unless http.http_poll is set.  Run by the same client state machine
 * as TCP, WebSocket and BOSH.
 */
#ifndef PARLEY_SERVER_HTTPPOLL_H
#define PARLEY_SERVER_HTTPPOLL_H

/* Mount the endpoint (when http.http_poll is on); from http_start. */
void http_poll_start(void);
/* Live HTTP polling sessions. */
unsigned http_poll_count(void);

#endif
