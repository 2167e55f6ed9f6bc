"""Helpers of the HTTP API and metrics tests: a parleyd with a plain http
listener and the metrics and http_api sections enabled, and a small HTTP
client (http.client, one connection a request)."""
import http.client
import json

import pytest

from parleytest import Parleyd, ServerError, free_port

NO_HTTP = 'module http is not available in this build'


def start_http_server(tmp_path_factory, name, metrics_allow='[127.0.0.0/8, "::1/128"]',
                      api_allow='[127.0.0.0/8, "::1/128"]', metrics_extra=''):
    """A started parleyd with its accounts and an http listener on
    srv.http_port serving /metrics and /api/.  Skips the test only when
    this build has no HTTP listener at all."""
    srv = Parleyd(tmp_path_factory.mktemp(name))
    srv.http_port = free_port()
    while srv.http_port in (srv.port, srv.tls_port):
        srv.http_port = free_port()
    text = srv.config.read_text()
    sections = ('metrics:\n  enabled: true\n  allow: %s\n%s'
                'http_api:\n  enabled: true\n  allow: %s\n' % (metrics_allow, metrics_extra, api_allow))
    text = text.replace('\nlisten:\n', '\n%slisten:\n  - { port: %d, address: 127.0.0.1, module: http, '
                        'starttls: off }\n' % (sections, srv.http_port), 1)
    srv.config.write_text(text)
    try:
        srv.start_with_users()
    except ServerError as e:
        if NO_HTTP in str(e):
            pytest.skip('this build has no HTTP listener (server/http.c)')
        raise
    return srv


def request(srv, method, path, body=None, token=None, headers=None):
    """(status, headers dict with lower-case names, body bytes).  One
    connection per request, closed by the server after its answer
    (Connection: close), so the test never holds many open."""
    conn = http.client.HTTPConnection('127.0.0.1', srv.http_port, timeout=30)
    h = {'Connection': 'close'}
    h.update(headers or {})
    if token is not None:
        h['Authorization'] = 'Bearer ' + token
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h['Content-Type'] = 'application/json'
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
