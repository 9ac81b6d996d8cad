#!/usr/bin/env python3
"""Errors that say why (issue 16): a missing or unreadable TLS certificate,
private key or CA file is named with the system's reason (not OpenSSL's
"system lib"), from spillway -t, at start-up and on a reload (which keeps
the running configuration); an admin listener address that clashes with a
proxy listener (the same, or a wildcard overlapping a specific one) is
refused by -t and at start-up."""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, check, eq, free_port, get, LOCALHOST, register,
                     respond, run_binary, run_main, skip, Spillway,
                     SPILLWAY_BIN, test,
                     wait_for)


class Dir:
    """A temporary directory, removed at the end."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="spillway-err-")
        register(self)

    def join(self, name):
        return os.path.join(self.path, name)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def self_signed(d):
    """A certificate and its key, made by the openssl command."""
    if shutil.which("openssl") is None:
        skip("no openssl command")
    crt, key = d.join("site.crt"), d.join("site.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                        "-subj", "/CN=localhost"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    check(r.returncode == 0, "openssl req: %s" % r.stderr.decode())
    return crt, key


def check_t(sp, want):
    """spillway -t on sp's file fails with exactly one line, want, after
    FILE:LINE:."""
    r = run_binary(["-t", "-c", sp.config_path])
    err = r.stderr.decode()
    eq(r.returncode, 1, "-t status (stderr %r)" % err)
    lines = err.splitlines()
    eq(len(lines), 1, "-t error lines: %r" % err)
    check(lines and lines[0].startswith(sp.config_path + ":") and
          lines[0].endswith(want), "-t says %r, want ...%r" % (err, want))
    check("system lib" not in err and "error:" not in err,
          "-t shows an OpenSSL code: %r" % err)
    return lines[0]


def tls_sp(cert, key, backend=None):
    return Spillway(["127.0.0.1:1"], start=False, backend=backend,
                    sections=[("tls", {"listen": "%s:%d" % (LOCALHOST,
                                                           free_port()),
                                       "certificate": cert,
                                       "private_key": key})])


@test("-t: a missing certificate, key or CA file, a directory: why")
def t_tls_files():
    d = Dir()
    crt, key = self_signed(d)
    check_t(tls_sp(d.join("nope.pem"), key),
            ": certificate %s: No such file or directory"
            % d.join("nope.pem"))
    check_t(tls_sp(crt, d.join("nope.key")),
            ": private_key %s: No such file or directory"
            % d.join("nope.key"))
    check_t(tls_sp(d.path, key), ": certificate %s: Is a directory"
            % d.path)
    sp = Spillway(["127.0.0.1:1"], start=False,
                  backend={"tls": "yes", "ca_file": d.join("ca.pem")})
    check_t(sp, ": ca_file %s: No such file or directory" % d.join("ca.pem"))
    # a file that is there but not PEM keeps OpenSSL's reason
    junk = d.join("junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    r = run_binary(["-t", "-c", tls_sp(junk, key).config_path])
    eq(r.returncode, 1, "-t on a file that is not PEM")
    check(": certificate %s: " % junk in r.stderr.decode(),
          "-t names the file: %r" % r.stderr)
    # and the good pair is valid
    r = run_binary(["-t", "-c", tls_sp(crt, key).config_path])
    eq(r.returncode, 0, "-t on a good pair (%r)" % r.stderr)


@test("an unreadable key file says Permission denied")
def t_unreadable():
    d = Dir()
    crt, key = self_signed(d)
    os.chmod(key, 0)
    sp = tls_sp(crt, key)
    if os.geteuid() != 0:
        check_t(sp, ": private_key %s: Permission denied" % key)
        return
    # root reads every file: check as nobody, who may read all but the key
    if shutil.which("setpriv") is None:
        skip("root, and no setpriv to drop to nobody")
    for p in (d.path, sp.tmpdir):
        os.chmod(p, 0o755)
    os.chmod(crt, 0o644)
    os.chmod(sp.config_path, 0o644)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", SPILLWAY_BIN, "-t",
                        "-c", sp.config_path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = r.stderr.decode()
    eq(r.returncode, 1, "-t as nobody (%r)" % err)
    check(err.rstrip().endswith(": private_key %s: Permission denied" % key)
          and "system lib" not in err, "-t as nobody says %r" % err)


@test("start-up with a missing certificate: exit 1, saying why")
def startup_missing_cert():
    d = Dir()
    _, key = self_signed(d)
    sp = tls_sp(d.join("gone.pem"), key)
    sp.stopped = True       # its exit is expected
    sp.start(wait=False)
    rc = sp.wait(10)
    eq(rc, 1, "exit status")
    check(wait_for(lambda: "certificate %s: No such file or directory"
                   % d.join("gone.pem") in sp.stderr_text(), 3),
          "start-up error: %s" % sp.stderr_tail(5))
    check("system lib" not in sp.stderr_text(), "OpenSSL code in %s"
          % sp.stderr_tail(5))


@test("reload with a certificate gone: refused with why, still serving")
def reload_missing_cert():
    d = Dir()
    crt, key = self_signed(d)
    be = Backend(respond(200, b"ok"))
    tp = free_port()
    sp = Spillway([be], sections=[("tls", {
        "listen": "%s:%d" % (LOCALHOST, tp), "certificate": crt,
        "private_key": key})])
    moved = d.join("moved.key")
    os.rename(key, moved)
    sp.reload()
    want = "reload failed: %s:" % sp.config_path
    why = "private_key %s: No such file or directory" % key
    check(wait_for(lambda: want in sp.stderr_text() and why in
                   sp.stderr_text(), 5),
          "reload error: %s" % sp.stderr_tail(5))
    check(sp.alive(), "spillway died on a failed reload")
    eq(get(sp.port, "/").status, 200, "plain listener after the failed "
       "reload")


@test("-t: an admin address that clashes with a proxy listener")
def t_admin_clash():
    port = free_port()
    sp = Spillway(["127.0.0.1:1"], start=False,
                  listen=["%s:%d" % (LOCALHOST, port)],
                  sections=[("admin", {"listen": "%s:%d" % (LOCALHOST,
                                                            port)})])
    check_t(sp, ": listen: admin address %s:%d is the same as [proxy] "
            "listen %s:%d on line 3" % (LOCALHOST, port, LOCALHOST, port))
    sp = Spillway(["127.0.0.1:1"], start=False,
                  listen=["*:%d" % port],
                  sections=[("admin", {"listen": "%s:%d" % (LOCALHOST,
                                                            port)})])
    check_t(sp, ": listen: admin address %s:%d overlaps [proxy] listen "
            "*:%d on line 3" % (LOCALHOST, port, port))
    # and at start-up: refused before any socket is bound
    sp.stopped = True       # its exit is expected
    sp.start(wait=False)
    eq(sp.wait(10), 1, "start-up exit status")
    check("overlaps [proxy] listen" in sp.stderr_text(),
          "start-up error: %s" % sp.stderr_tail(5))


if __name__ == "__main__":
    run_main()
