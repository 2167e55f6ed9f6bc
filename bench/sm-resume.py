#!/usr/bin/env python3
"""Server CPU of a stream management resume (XEP-0198) against a full login.

  sm-resume.py -p PORT -P "PIDS" [-D DOMAIN] [-n USERS] [-f FIRST] [-c CONC]
               [-R ROUNDS] [--tls-resume] [--no-tls] [--resume-via sasl1|sasl2]
               [--sasl2-mech MECH] [-L LABEL]

Phase "login": USERS users (uFIRST..) each log in fully over a new TCP
connection: stream, STARTTLS, TLS, SASL SCRAM-SHA-1 (the client derives its
keys with hashlib.pbkdf2_hmac, once per salt), stream restart, resource
bind, <enable xmlns='urn:xmpp:sm:3' resume='true'/> (answered <enabled
id=.. resume='true'/>), roster get, initial presence (and its echo from the
server), then <r/> answered by <a/> (so that the server has handled
everything and the client knows how many stanzas it had: h), and the TCP connection is dropped abruptly (RST,
no </stream:stream>, no TLS close_notify): the session stays, detached.

Before them, user FIRST+USERS logs in once (not measured) to see whether
the server echoes an initial presence to the resource that sent it (then
every login waits for that echo before taking h) and to get a first TLS
session for --tls-resume.

Phase "resume" (ROUNDS times): each session is resumed over a new TCP
connection: stream, STARTTLS, TLS, SASL SCRAM-SHA-1, stream restart,
<resume xmlns='urn:xmpp:sm:3' previd=ID h=H/> (answered <resumed/>), the
stanzas the server resends counted, <r/> and <a/>, and the connection
dropped as above.

With --resume-via sasl2 a resume is inline in SASL2 (XEP-0388, XEP-0198):
stream, STARTTLS, TLS, one <authenticate/> (SASL2_MECHS[--sasl2-mech],
SCRAM-SHA-1 by default) carrying the <resume/>, and <success/> carrying
<resumed/>: no stream restart and no separate <resume/> round trip.

Phase "auth": each user once more, STARTTLS, TLS and SASL only (SASL2 with
the same mechanism with --resume-via sasl2), dropped as above: what a
resume costs before its <resume/> (resume_own_ms is the difference).

Another SASL2 mechanism for the resume (FAST tokens, XEP-0484, say) is a
class like xmppclient.ScramSha1 (name, initial(), step(), verify()) made by
an entry of SASL2_MECHS from the runner and the user; whatever it needs
from the login (a token) can be kept in Runner.creds[user] by the login.

With --no-tls there is no STARTTLS at all (the server must allow that):
what the XMPP part of both costs.  With --tls-resume every TLS handshake after a connection's first offers
the session (ticket) the client got on an earlier connection (Python ssl
session=, a pool of them), in both phases; without it every handshake is a
full one.  CONC connections run in parallel (threads).

The server's CPU (utime+stime from /proc/PID/stat, summed over PIDS) is read
before and after each phase, after the server has been quiet for a moment
(SETTLE seconds); it prints one JSON line (scenario "sm-resume"): CPU per
login and per resume in ms, their ratio, operations per second, TLS
handshakes resumed, failures.  Client-side cost is not measured.

--record CMD runs CMD (a shell command, in a process group of its own)
during the resume phase only, stopped with SIGINT: a profiler attached to
the server sees resumes and nothing else.  Its own cost is in the figures.
"""
import argparse
import json
import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmppclient import (NS_BIND, NS_CLIENT, NS_SASL2, NS_SESSION, NS_SM, Fail, HtSha256None,  # noqa: E402
                        ScramSha1, Stream, add_server_args, cpu_of, pid_list)


ERRORS = (Fail, OSError, ssl.SSLError, ET.ParseError, KeyError, ValueError)

# SASL2 mechanisms for --resume-via sasl2: name -> f(runner, stream) giving
# the mechanism object of one exchange for the stream's user.
SASL2_MECHS = {
    "SCRAM-SHA-1": lambda r, st: ScramSha1(f"{r.args.prefix}{st.user}", r.args.password),
    # FAST (XEP-0484): the token Runner.fetch_token got for the user
    "HT-SHA-256-NONE": lambda r, st: HtSha256None(f"{r.args.prefix}{st.user}", r.creds[st.user]),
}
NS_FAST = "urn:xmpp:fast:0"


class Runner:
    def __init__(self, args):
        self.args = args
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.sessions = queue.SimpleQueue()   # TLS sessions for --tls-resume
        self.lock = threading.Lock()
        self.sm = {}   # user -> [sm id, h]
        self.fail = {"login": 0, "resume": 0, "auth": 0}
        self.errors = {}
        self.tls_reused = {"login": 0, "resume": 0, "auth": 0}
        self.authed = 0
        self.resent = 0
        self.resumed_ok = 0
        self.echo = False
        self.creds = {}   # user -> what a SASL2 mechanism keeps from the login

    def probe_echo(self, user):
        """Whether the server echoes an initial presence to its sender: one
        login of user (not measured, no stream management), with a wait of
        up to 2 s for the echo.  Waiting for it in every login then makes
        sure the client has everything before it takes h."""
        st = Stream(self.args, None)
        st.user = user
        f = st.scram(self.secure(st))
        st.iq(("set", f"<bind xmlns='{NS_BIND}'><resource>probe</resource></bind>"), "b")
        sess_feat = f.find(f"{{{NS_SESSION}}}session")
        if sess_feat is not None and sess_feat.find(f"{{{NS_SESSION}}}optional") is None:
            st.iq(("set", f"<session xmlns='{NS_SESSION}'/>"), "s")
        st.send("<presence/>")
        st.sock.settimeout(2)
        self.echo = False
        try:
            while not self.echo:
                el = st.next(f"{{{NS_CLIENT}}}presence")
                self.echo = el.get("from") == f"{self.args.prefix}{user}@{self.args.domain}/probe"
        except (OSError, Fail):
            pass
        tls = st.sock.session if isinstance(st.sock, ssl.SSLSocket) else None
        st.send("</stream:stream>")
        st.drop()
        return tls

    def authenticate(self, st, extra=""):
        """SASL over STARTTLS (unless --no-tls) as --resume-via says: SASL1
        (then the stream restart) or SASL2 with extra in <authenticate/>.
        The SASL2 <success/>, or None after SASL1."""
        f = self.secure(st)
        if self.args.resume_via == "sasl1":
            st.scram(f)
            return None
        return st.sasl2(f, SASL2_MECHS[self.args.sasl2_mech](self, st), extra)

    def secure(self, st):
        """STARTTLS (unless --no-tls); the stream features after it"""
        return st.features if self.args.no_tls else st.starttls(self.ctx)

    def tls_session(self):
        if not self.args.tls_resume:
            return None
        try:
            return self.sessions.get_nowait()
        except queue.Empty:
            return None

    def give_back(self, sess):
        if self.args.tls_resume and sess is not None:
            self.sessions.put(sess)

    def note_error(self, phase, e):
        with self.lock:
            self.fail[phase] += 1
            k = f"{phase}: {e}"[:120]
            self.errors[k] = self.errors.get(k, 0) + 1

    def connection(self, phase, user, body):
        """A new connection for user, body(stream) over it, and the abrupt
        drop whatever happens; an error is counted for phase.  True when
        body went through."""
        try:
            st = Stream(self.args, self.tls_session())
        except ERRORS as e:
            self.note_error(phase, e)
            return False
        st.user = user
        try:
            body(st)
            with self.lock:
                self.tls_reused[phase] += st.tls_reused
            return True
        except ERRORS as e:
            self.note_error(phase, e)
            return False
        finally:
            try:
                self.give_back(st.drop())
            except OSError:
                pass

    def login(self, user):
        def body(st):
            f = st.scram(self.secure(st))
            if f.find(f"{{{NS_SM}}}sm") is None:
                raise Fail("no urn:xmpp:sm:3 among the stream features")
            st.iq(("set", f"<bind xmlns='{NS_BIND}'><resource>sm{user}</resource></bind>"), "b")
            sess_feat = f.find(f"{{{NS_SESSION}}}session")
            if sess_feat is not None and sess_feat.find(f"{{{NS_SESSION}}}optional") is None:
                st.iq(("set", f"<session xmlns='{NS_SESSION}'/>"), "s")
            st.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
            en = st.next((f"{{{NS_SM}}}enabled", f"{{{NS_SM}}}failed"))
            if en.tag.endswith("failed") or en.get("resume") not in ("true", "1") or not en.get("id"):
                raise Fail("enable with resume refused")
            st.counting = True
            st.iq(("get", "<query xmlns='jabber:iq:roster'/>"), "r")
            st.send("<presence/>")
            if self.echo:   # the server's echo of the initial presence (RFC 6121 4.2.2)
                me = f"{self.args.prefix}{user}@{self.args.domain}/sm{user}"
                while st.next(f"{{{NS_CLIENT}}}presence").get("from") != me:
                    pass
            st.sync()
            with self.lock:
                self.sm[user] = [en.get("id"), st.h_in]
        self.connection("login", user, body)

    def resume(self, user):
        with self.lock:
            sm = self.sm.get(user)
        if not sm:
            return

        def body(st):
            resume = f"<resume xmlns='{NS_SM}' previd='{sm[0]}' h='{sm[1]}'/>"
            st.h_in = sm[1]
            if self.args.resume_via == "sasl1":
                self.authenticate(st)
                st.send(resume)
                st.counting = True
                r = st.next((f"{{{NS_SM}}}resumed", f"{{{NS_SM}}}failed"))
            else:
                # inline: the stanzas sent again follow <success/> and its
                # features; none comes before them
                st.counting = True
                ok = self.authenticate(st, resume)
                r = ok.find(f"{{{NS_SM}}}resumed")
                if r is None:
                    r = ok.find(f"{{{NS_SM}}}failed")
                if r is None:
                    raise Fail("SASL2 success without <resumed/> or <failed/>")
            if r.tag.endswith("failed"):
                raise Fail("resume failed: " + ",".join(c.tag.split("}")[-1] for c in r))
            before = st.h_in
            st.sync()
            with self.lock:
                self.resent += (st.h_in - before) % 2**32
                sm[1] = st.h_in
                self.resumed_ok += 1
        if not self.connection("resume", user, body):
            with self.lock:
                self.sm.pop(user, None)

    def fetch_token(self, user):
        """FAST: a SASL2 SCRAM-SHA-1 login with <request-token/> (and the
        user-agent id a token is bound to); the token kept in creds.  Not
        measured: a client does this once, at its first login."""
        def body(st):
            extra = (f"<user-agent xmlns='{NS_SASL2}' id='bench-{user}'/>"
                     f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>")
            ok = st.sasl2(self.secure(st), ScramSha1(f"{self.args.prefix}{user}", self.args.password), extra)
            tok = ok.find(f"{{{NS_FAST}}}token")
            if tok is None or not tok.get("token"):
                raise Fail("no FAST token in SASL2 <success/>")
            with self.lock:
                self.creds[user] = tok.get("token")
        self.connection("login", user, body)

    def auth(self, user):
        """STARTTLS and SASL only, then the same abrupt drop: what a resume
        costs before its <resume/>"""
        def body(st):
            self.authenticate(st)
            with self.lock:
                self.authed += 1
        self.connection("auth", user, body)

    def run_phase(self, fn, users):
        q = queue.SimpleQueue()
        for u in users:
            q.put(u)

        def worker():
            while True:
                try:
                    u = q.get_nowait()
                except queue.Empty:
                    return
                fn(u)
        ts = [threading.Thread(target=worker) for _ in range(self.args.conc)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_args(ap, 30.0)
    ap.add_argument("-n", "--users", type=int, default=200)
    ap.add_argument("-f", "--first", type=int, default=1)
    ap.add_argument("-c", "--conc", type=int, default=8)
    ap.add_argument("-R", "--rounds", type=int, default=2, help="resumes of each session")
    ap.add_argument("-S", "--settle", type=float, default=1.0)
    ap.add_argument("--tls-resume", action="store_true")
    ap.add_argument("--no-tls", action="store_true", help="no STARTTLS (the server must not require it)")
    ap.add_argument("--resume-via", choices=("sasl1", "sasl2"), default="sasl1",
                    help="resume after SASL1 and a stream restart, or inline in SASL2")
    ap.add_argument("--sasl2-mech", choices=sorted(SASL2_MECHS), default="SCRAM-SHA-1")
    ap.add_argument("--record", metavar="CMD",
                    help="a shell command started just before the resume phase and sent SIGINT when it "
                         "ends (e.g. 'perf record -g -o FILE -p PID'): a profile of the resumes alone")
    args = ap.parse_args()
    pids = pid_list(args.pids)
    r = Runner(args)
    users = list(range(args.first, args.first + args.users))
    # user FIRST+USERS: does the server echo presence, and a first TLS session
    try:
        tls = r.probe_echo(args.first + args.users)
    except ERRORS as e:
        print(json.dumps({"scenario": "sm-resume", "label": args.label, "error": f"probe login: {e}"}), flush=True)
        print(f"[sm] {args.label}: the probe login failed: {e}", file=sys.stderr)
        sys.exit(1)
    if args.tls_resume:
        for _ in range(args.conc):
            r.sessions.put(tls)
    if args.resume_via == "sasl2" and args.sasl2_mech.startswith("HT-"):
        r.run_phase(r.fetch_token, users)
        if r.fail["login"]:
            print(f"[sm] {args.label}: FAST tokens: {r.fail['login']} failed: {r.errors}", file=sys.stderr)
            sys.exit(1)
    time.sleep(args.settle)
    out = {"scenario": "sm-resume", "label": args.label, "users": args.users, "conc": args.conc,
           "rounds": args.rounds, "tls_resume": args.tls_resume, "tls": not args.no_tls, "presence_echo": r.echo,
           "resume_via": args.resume_via + (f" {args.sasl2_mech}" if args.resume_via == "sasl2" else "")}
    c0, t0 = cpu_of(pids), time.monotonic()
    r.run_phase(r.login, users)
    t1 = time.monotonic()
    time.sleep(args.settle)
    c1 = cpu_of(pids)
    logins = args.users - r.fail["login"]
    rec = subprocess.Popen(args.record, shell=True, start_new_session=True) if args.record else None
    if rec:
        time.sleep(args.settle)  # the recorder attaches
    c2, t2 = cpu_of(pids), time.monotonic()
    for _ in range(args.rounds):
        r.run_phase(r.resume, users)
    t3 = time.monotonic()
    if rec:
        os.killpg(rec.pid, signal.SIGINT)
        rec.wait()
    time.sleep(args.settle)
    c3 = cpu_of(pids)
    resumes = r.resumed_ok
    c4, t4 = cpu_of(pids), time.monotonic()
    r.run_phase(r.auth, users)
    t5 = time.monotonic()
    time.sleep(args.settle)
    c5 = cpu_of(pids)
    auths = r.authed
    out.update(logins=logins, login_failures=r.fail["login"], resumes=resumes, resume_failures=r.fail["resume"],
               login_cpu_s=round(c1 - c0, 3), resume_cpu_s=round(c3 - c2, 3),
               login_ms=round((c1 - c0) / logins * 1e3, 3) if logins else -1,
               resume_ms=round((c3 - c2) / resumes * 1e3, 3) if resumes else -1,
               logins_per_s=round(logins / (t1 - t0), 1), resumes_per_s=round(resumes / (t3 - t2), 1),
               auths=auths, auth_failures=r.fail["auth"], auth_cpu_s=round(c5 - c4, 3),
               auth_ms=round((c5 - c4) / auths * 1e3, 3) if auths else -1, auths_per_s=round(auths / (t5 - t4), 1),
               tls_reused_login=r.tls_reused["login"], tls_reused_resume=r.tls_reused["resume"],
               tls_reused_auth=r.tls_reused["auth"],
               resent_stanzas=r.resent, errors=r.errors)
    out["resume_over_login"] = (round(out["resume_ms"] / out["login_ms"], 3)
                                if logins and resumes and out["login_ms"] > 0 else -1)
    # what the <resume/> itself adds to the connection and authentication
    out["resume_own_ms"] = round(out["resume_ms"] - out["auth_ms"], 3) if resumes and auths else -1
    print(json.dumps(out), flush=True)
    print(f"[sm] {args.label}: login {out['login_ms']} ms CPU ({logins} ok, {r.fail['login']} failed, "
          f"{out['logins_per_s']}/s), resume {out['resume_ms']} ms CPU ({resumes} ok, {r.fail['resume']} failed, "
          f"{out['resumes_per_s']}/s), resume/login {out['resume_over_login']}, auth only {out['auth_ms']} ms, TLS resumed "
          f"{r.tls_reused['login']}/{logins} + {r.tls_reused['resume']}/{resumes}", file=sys.stderr)
    if r.errors:
        print("[sm] errors: " + json.dumps(r.errors), file=sys.stderr)


if __name__ == "__main__":
    main()
