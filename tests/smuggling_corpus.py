#!/usr/bin/env python3
"""Replay the public request-smuggling corpus through a built spillway.

usage: tests/smuggling_corpus.py [--spillway BIN] [--corpus DIR]
                                 [--timeout SECONDS] [RUNNER_ARGS...]

The corpus (1090 cases from four public suites, with its own runner,
run_external.py, which is also the backend and judges each case from the
bytes the backend received) lives outside this repository, in
../shared/corpora/http-smuggling relative to the top of the source tree
(or wherever --corpus or $SPILLWAY_CORPUS says). Without it, this script
says it is skipped and exits 77.

It starts one spillway on free 127.0.0.1 ports, its backend being the
runner's port, runs the runner against it, stops spillway (by its PID),
and exits 0 only if every case held and spillway lived to the end. Extra
arguments go to the runner (--only REGEX, --show-fail, --json OUT). The
last line is the runner's count, "N held, M failed", for .ci/run to add
up; spillway's stderr is kept in a temporary directory and its tail shown
on failure.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CORPUS = os.path.join(os.path.dirname(TOP), "shared", "corpora",
                              "http-smuggling")
SKIP = 77


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port, proc, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def start_spillway(binary, tmp):
    """spillway on a free port with the default configuration otherwise;
    a port taken between picking and binding is tried again."""
    for _ in range(5):
        proxy, backend = free_port(), free_port()
        if proxy == backend:
            continue
        conf = os.path.join(tmp, "spillway.ini")
        with open(conf, "w") as f:
            f.write("# written by tests/smuggling_corpus.py\n"
                    "[proxy]\nlisten = 127.0.0.1:%d\naccess_log = off\n"
                    "%s"
                    "[backend]\nserver = 127.0.0.1:%d\n" % (
                        proxy, "workers = %s\n" % WORKERS if WORKERS else "",
                        backend))
        err = open(os.path.join(tmp, "stderr"), "ab")
        proc = subprocess.Popen([binary, "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
        err.close()
        if listening(proxy, proc):
            return proc, proxy, backend
        stop(proc)
    return None, 0, 0


# SPILLWAY_WORKERS=N: run spillway with N worker threads (make
# check-workers)
WORKERS = os.environ.get("SPILLWAY_WORKERS", "")


def main():
    ap = argparse.ArgumentParser(
        description="replay the public smuggling corpus through spillway")
    ap.add_argument("--spillway", default=os.environ.get(
        "SPILLWAY_BIN", os.path.join(TOP, "src", "spillway")))
    ap.add_argument("--corpus", default=os.environ.get(
        "SPILLWAY_CORPUS", DEFAULT_CORPUS))
    ap.add_argument("--timeout", type=float, default=1200,
                    help="stop the runner after this many seconds")
    args, rest = ap.parse_known_args()

    runner = os.path.join(args.corpus, "run_external.py")
    if not os.path.isfile(runner):
        print("smuggling corpus: skipped (no %s)" % runner)
        return SKIP
    if not os.access(args.spillway, os.X_OK):
        print("smuggling corpus: no spillway binary at %s (build first)"
              % args.spillway)
        return 1

    tmp = tempfile.mkdtemp(prefix="spillway-corpus-")
    proc = None
    try:
        proc, proxy, backend = start_spillway(args.spillway, tmp)
        if proc is None:
            print("smuggling corpus: spillway did not start:\n%s"
                  % tail(os.path.join(tmp, "stderr")))
            return 1
        print("smuggling corpus: %s through spillway (pid %d) on "
              "127.0.0.1:%d, backend 127.0.0.1:%d"
              % (args.corpus, proc.pid, proxy, backend), flush=True)
        try:
            r = subprocess.run([sys.executable, runner, str(proxy),
                                str(backend)] + rest,
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=args.timeout)
            out, rc = r.stdout.decode("utf-8", "replace"), r.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode("utf-8", "replace")
            out += "\nsmuggling corpus: runner stopped after %ds\n" \
                % args.timeout
            rc = 1
        alive = proc.poll() is None
        stop(proc)
        lines = out.rstrip("\n").splitlines()
        count = lines[-1] if lines and lines[-1].endswith(" failed") and \
            " held, " in lines[-1] else None
        print("\n".join(lines[:-1] if count else lines))
        if not alive:
            print("smuggling corpus: spillway died (status %s); stderr:\n%s"
                  % (proc.returncode, tail(os.path.join(tmp, "stderr"))))
        if count is None:
            print("smuggling corpus: no count from the runner (status %d)"
                  % rc)
            return 1
        print(count)
        held, failed = (int(count.split()[0]),
                        int(count.split(", ")[1].split()[0]))
        return 0 if rc == 0 and alive and failed == 0 and held > 0 else 1
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
