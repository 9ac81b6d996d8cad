#!/usr/bin/env python3
"""
test_demo.py: `make demo` in short (DEMO_SECONDS=5) on free ports: the
three runs happen, the tables are printed, the report and the picture are
written, spillway beats the app alone, and no process is left behind,
also when the demo is interrupted.

    SPILLWAY_BIN=... LOADGEN_BIN=... LEGACY_APP_BIN=... \\
        python3 contrib/demo/test_demo.py [NAME...]

The binaries default to their places in the repository. TAP output; exit
status 1 if a test failed.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TOP_SRCDIR = os.path.abspath(os.environ.get("top_srcdir") or REPO)
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))

import harness  # noqa: E402
from harness import check, diag, eq, test, wait_for  # noqa: E402


def binary(env, *path):
    return os.path.abspath(os.environ.get(env) or os.path.join(REPO, *path))


SPILLWAY = binary("SPILLWAY_BIN", "src", "spillway")
LOADGEN = binary("LOADGEN_BIN", "contrib", "loadgen", "loadgen")
APP = binary("LEGACY_APP_BIN", "contrib", "legacy-app", "legacy-app")
DEMO = os.path.join(TOP_SRCDIR, "contrib", "demo", "demo.sh")
CONF = os.path.join(TOP_SRCDIR, "conf", "spillway.ini")


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Demo:
    """demo.sh in its own session, on free ports, writing to a temporary
    directory; close() removes it (and kills the session if need be)."""

    def __init__(self, seconds=5):
        for b in (SPILLWAY, LOADGEN, APP):
            if not os.access(b, os.X_OK):
                harness.skip("%s not built" % b)
        self.tmp = tempfile.mkdtemp(prefix="demo-test-")
        self.out = os.path.join(self.tmp, "out")
        ports = set()
        while len(ports) < 4:
            ports.add(harness.free_port())
        self.ports = sorted(ports)
        # two workers: half the load of the default demo, kinder to the
        # tests running alongside
        env = dict(os.environ, DEMO_SECONDS=str(seconds),
                   DEMO_PROBE_SECONDS="1", DEMO_WORKERS="2",
                   DEMO_PROXY_PORT=str(self.ports[0]),
                   DEMO_APP_PORT=str(self.ports[1]),
                   DEMO_ADMIN_PORT=str(self.ports[2]),
                   DEMO_APP2_PORT=str(self.ports[3]))
        self.stdout_path = os.path.join(self.tmp, "stdout")
        self.stderr_path = os.path.join(self.tmp, "stderr")
        with open(self.stdout_path, "w") as o, \
                open(self.stderr_path, "w") as e:
            # SIGINT as at a terminal: a suite started in the background
            # of a non-interactive shell has it ignored, and a shell
            # cannot trap a signal ignored on entry (POSIX), so Ctrl-C
            # would never reach demo.sh's trap
            self.proc = subprocess.Popen(
                ["sh", DEMO, SPILLWAY, LOADGEN, APP, CONF, self.out],
                stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=env,
                start_new_session=True, preexec_fn=_default_sigint)
        harness.register(self)

    def text(self, which="stdout"):
        with open(getattr(self, which + "_path"), errors="replace") as f:
            return f.read()

    def leftovers(self):
        """Processes, other than the demo itself, that it started: their
        command lines name its output directory or one of its ports."""
        marks = [self.out] + ["127.0.0.1:%d" % p for p in self.ports] + \
            ["--port\0%d\0" % p for p in self.ports] + \
            ["%s\0%d\0" % (c, p) for p in self.ports
             for c in ("capacity", "grow")]
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) in (os.getpid(),
                                                 self.proc.pid):
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().decode(errors="replace")
                with open("/proc/%s/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and any(m in cmd for m in marks):
                found.append("%s: %s" % (pid, cmd.replace("\0", " ")))
        listening = [p for p in self.ports if harness._listen_inodes(p)]
        return found, listening

    def close(self):
        problems = []
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            problems.append("demo.sh still running at the end of the test")
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


def figures(out, name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)


@test("make demo in short: four runs, tables, report, picture, no "
      "process left", timeout=170)
def test_demo_runs():
    d = Demo(seconds=5)
    t0 = time.monotonic()
    rc = d.proc.wait(timeout=150)
    took = time.monotonic() - t0
    stdout, stderr = d.text(), d.text("stderr")
    diag("demo took %.0f s" % took)
    if rc != 0:
        diag(stdout[-3000:])
        diag(stderr[-3000:])
    eq(rc, 0, "demo.sh exit status")
    for title in ("legacy-app alone", "behind spillway",
                  "behind spillway, data growing",
                  "two apps: one dies, one slows", "== summary",
                  "each server, a second before the end",
                  "p99 of 2xx", "goodput"):
        check(title in stdout, "%r printed:\n%s" % (title, stdout))
    check("report: %s/report.html" % d.out in stdout, stdout)
    check("http://127.0.0.1:8082/" in stdout and "make run" in stdout,
          "says where the live dashboard is:\n" + stdout)
    for f in ("direct.csv", "spillway.csv", "growth.csv", "direct.json",
              "spillway.json", "growth.json", "failover.csv",
              "failover.json", "meta.json", "report.html",
              "demo.svg", "summary.txt", "spillway.ini"):
        check(os.path.getsize(os.path.join(d.out, f)) > 0, "%s written" % f)
    svg = ET.parse(os.path.join(d.out, "demo.svg")).getroot()
    check(svg.tag.endswith("svg"), svg.tag)
    check(len(svg.findall(".//{http://www.w3.org/2000/svg}polyline")) >= 12,
          "the time series are drawn")
    with open(os.path.join(d.out, "report.html")) as f:
        page = f.read()
    check("<svg" in page and "legacy-app alone" in page, "report page")
    check("src=" not in page and "<link" not in page,
          "the report is self-contained")
    direct, spw = figures(d.out, "direct"), figures(d.out, "spillway")
    growth = figures(d.out, "growth")
    diag("goodput direct %.1f/s, spillway %.1f/s, growth %.1f/s; "
         "p99 direct %s, spillway %s ms" % (direct["goodput"],
                                            spw["goodput"],
                                            growth["goodput"],
                                            direct["p99_ms"], spw["p99_ms"]))
    with open(os.path.join(d.out, "meta.json")) as f:
        meta = json.load(f)
    check(meta["rate"] >= 2.5 * meta["capacity"], repr(meta))
    caps = meta["capacity_steps"]
    check(caps[0] > 1.4 * caps[1] > 1.4 * 1.4 * caps[2],
          "growth lowers the capacity: %r" % caps)
    check(spw["goodput"] > 2 * direct["goodput"],
          "spillway keeps the goodput up")
    check(spw["goodput"] > 0.6 * meta["capacity"], "near capacity")
    check(spw["s503"] > 0 and spw["timeouts"] == 0 and spw["errors"] == 0,
          repr(spw))
    check(direct["timeouts"] > direct["ok_2xx"], "the app alone times out")
    check(spw["p99_ms"] < direct["p99_ms"], "and answers fast")
    check(growth["s503"] > spw["s503"], "more shed as capacity falls")
    # run 4: the second app dies and comes back; its checks say so
    fo = figures(d.out, "failover")
    diag("failover: goodput %.1f/s, %r" % (fo["goodput"], fo))
    check(fo["goodput"] > 0.6 * meta["capacity"], "failover goodput")
    check(fo["timeouts"] == 0, "no client waited on the dead app: %r" % fo)
    check(re.search(r"127\.0\.0\.1:%d: up -> (down|ejected)" % d.ports[3],
                    stdout), "the dead app's fall printed:\n" + stdout)
    check(re.search(r"127\.0\.0\.1:%d: (down|ejected|trial) -> up"
                    % d.ports[3], stdout),
          "the app's return printed:\n" + stdout)
    found, listening = d.leftovers()
    check(not found, "processes left behind: %r" % found)
    check(not listening, "ports still in use: %r" % listening)


@test("interrupted: SIGINT or SIGTERM stops every process it started",
      timeout=120)
def test_demo_interrupted():
    d = Demo(seconds=20)
    lg_log = os.path.join(d.out, "loadgen-direct.log")
    check(wait_for(lambda: os.path.exists(lg_log) or
                   d.proc.poll() is not None, timeout=60),
          "the first run did not start:\n" + d.text("stderr"))
    check(d.proc.poll() is None, "demo ended early:\n" + d.text("stderr"))
    time.sleep(1)
    found, _ = d.leftovers()
    check(len(found) >= 2, "app and loadgen running: %r" % found)
    # Ctrl-C: the whole foreground process group gets SIGINT
    os.killpg(d.proc.pid, signal.SIGINT)
    rc = d.proc.wait(timeout=30)
    check(rc != 0, "exit status %d" % rc)
    check(wait_for(lambda: d.leftovers() == ([], []), timeout=5),
          "left behind: %r" % (d.leftovers(),))
    d2 = Demo(seconds=20)
    check(wait_for(lambda: os.path.exists(os.path.join(
        d2.out, "app-direct.log")), timeout=60), d2.text("stderr"))
    time.sleep(1)
    # SIGTERM to the script alone, as a supervisor would
    d2.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = d2.proc.wait(timeout=30)
    check(time.monotonic() - t0 < 15, "stopped promptly")
    check(rc != 0, "exit status %d" % rc)
    check(wait_for(lambda: d2.leftovers() == ([], []), timeout=5),
          "left behind: %r" % (d2.leftovers(),))


if __name__ == "__main__":
    harness.run_main()
