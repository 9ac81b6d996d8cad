#!/usr/bin/env python3
"""
collapse_backend.py: an HTTP/1.1 backend that collapses under overload,
like a legacy application with a fixed worker pool in front of a database.

  - W workers (threads), each serving one request at a time; a request
    takes S ms of (sleeping, CPU-light) service time, and S grows with the
    backlog: S * min(cap, 1 + degrade * backlog / W), where backlog is the
    number of requests waiting for a worker when service starts. Piled-up
    requests make every request slower (lock contention, cache misses,
    swapping: the knee of a real application).
  - It accepts every connection and queues every request, without bound.
    It never refuses, and it serves requests whose clients have already
    given up (it does not check).
  - Keep-alive HTTP/1.1; every response is "200 OK", Content-Length,
    body "ok\\n". Requests on one connection are answered in order.

Capacity can change mid-run: SIGUSR1 doubles the workers, SIGUSR2 halves
them, and --schedule "10:8,20:2" sets 8 workers 10 s and 2 workers 20 s
after the first request arrives (or after start with
--schedule-from start).

Python 3 standard library only. One I/O thread (selectors) accepts and
parses; workers answer from a shared FIFO.
"""

import argparse
import collections
import os
import selectors
import signal
import socket
import sys
import threading
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 3\r\n\r\nok\n")
RESPONSE_CLOSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: 3\r\nConnection: close\r\n\r\nok\n")
MAX_HEAD = 65536


class Conn:
    __slots__ = ("sock", "buf", "pending", "busy", "closed", "body_left")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pending = collections.deque()  # parsed, waiting for busy=0
        self.busy = False                   # a request queued or served
        self.closed = False                 # the I/O thread is done with it
        self.body_left = 0                  # request body bytes to skip


class Backend:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.work_cv = threading.Condition(self.lock)
        self.active_cv = threading.Condition(self.lock)
        self.queue = collections.deque()    # (conn, close_after, t_arrival)
        self.workers = args.workers
        self.threads = []
        self.sel = selectors.DefaultSelector()
        self.served = 0
        self.served_gone = 0                # answer could not be written
        self.accepted = 0
        self.received = 0
        self.first_request = None
        self.t_start = time.monotonic()
        self.svc_sum = 0.0
        self.svc_n = 0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.signals = collections.deque()

    # ---------------------------------------------------------- workers
    def set_workers(self, n, why):
        n = max(1, min(int(n), self.args.max_workers))
        with self.lock:
            old = self.workers
            self.workers = n
            while len(self.threads) < n:
                t = threading.Thread(target=self.worker,
                                     args=(len(self.threads),), daemon=True)
                self.threads.append(t)
                t.start()
            self.active_cv.notify_all()
            self.work_cv.notify_all()
        self.log("workers %d -> %d (%s)" % (old, n, why))

    def worker(self, index):
        a = self.args
        while True:
            with self.lock:
                while True:
                    if index < self.workers and self.queue:
                        conn, close_after, _ = self.queue.popleft()
                        backlog = len(self.queue)
                        workers = self.workers
                        break
                    if index >= self.workers:
                        if self.queue:
                            self.work_cv.notify()   # pass the wakeup on
                        self.active_cv.wait()
                    else:
                        self.work_cv.wait()
            factor = min(a.cap, 1.0 + a.degrade * backlog / workers)
            svc = a.service_ms / 1000.0 * factor
            time.sleep(svc)
            gone = False
            try:
                conn.sock.send(RESPONSE_CLOSE if close_after else RESPONSE)
                if close_after:
                    conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                gone = True
            with self.lock:
                self.served += 1
                self.served_gone += gone
                self.svc_sum += svc
                self.svc_n += 1
                conn.busy = False
                if conn.pending:
                    self.enqueue_locked(conn, conn.pending.popleft())
                elif conn.closed:
                    conn.sock.close()

    def enqueue_locked(self, conn, item):
        conn.busy = True
        self.queue.append((conn, item[0], item[1]))
        self.work_cv.notify()

    # ---------------------------------------------------------- I/O thread
    def accept(self, lsock):
        for _ in range(512):
            try:
                s, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log("accept: %s" % e)
                return
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.accepted += 1
            self.sel.register(s, selectors.EVENT_READ, Conn(s))

    def parse(self, conn, now):
        """Requests complete in conn.buf -> conn.pending."""
        buf = conn.buf
        got = []
        while True:
            if conn.body_left:
                n = min(conn.body_left, len(buf))
                del buf[:n]
                conn.body_left -= n
                if conn.body_left:
                    break
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                if len(buf) > MAX_HEAD:
                    return None
                break
            head = bytes(buf[:i]).decode("latin-1")
            del buf[:i + 4]
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                return None
            version = parts[2]
            close_after = version == "HTTP/1.0"
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip().lower()
                if name == "connection":
                    if "close" in value:
                        close_after = True
                    elif "keep-alive" in value:
                        close_after = False
                elif name == "content-length":
                    try:
                        conn.body_left = int(value)
                    except ValueError:
                        return None
            got.append((close_after, now))
            if close_after:
                break
        return got

    def read(self, conn):
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        now = time.monotonic()
        reqs = None
        if data:
            conn.buf += data
            reqs = self.parse(conn, now)
        with self.lock:
            if reqs:
                self.received += len(reqs)
                if self.first_request is None:
                    self.first_request = now
                conn.pending.extend(reqs)
                if not conn.busy:
                    self.enqueue_locked(conn, conn.pending.popleft())
            if not data or reqs is None:
                # EOF or a bad request: done reading; queued requests are
                # still served (nobody checks whether the client is there).
                self.sel.unregister(conn.sock)
                conn.closed = True
                if not conn.busy:
                    conn.sock.close()

    def run(self):
        a = self.args
        lsock = socket.socket(socket.AF_INET6 if ":" in a.host
                              else socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((a.host, a.port))
        lsock.listen(a.backlog)
        lsock.setblocking(False)
        self.sel.register(lsock, selectors.EVENT_READ, None)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.set_workers(a.workers, "start")
        self.log("listening on %s:%d, %d workers, %.1f ms, degrade %.2f, "
                 "cap %.0fx" % (a.host, lsock.getsockname()[1], a.workers,
                                a.service_ms, a.degrade, a.cap))
        schedule = list(a.schedule)
        next_report = time.monotonic() + 1
        last_served = 0
        while True:
            for key, _ in self.sel.select(0.05):
                if key.data is None:
                    self.accept(lsock)
                elif key.data == "wake":
                    try:
                        os.read(self.wake_r, 512)
                    except BlockingIOError:
                        pass
                else:
                    self.read(key.data)
            while self.signals:
                sig = self.signals.popleft()
                if sig == signal.SIGUSR1:
                    self.set_workers(self.workers * 2, "SIGUSR1")
                elif sig == signal.SIGUSR2:
                    self.set_workers(max(1, self.workers // 2), "SIGUSR2")
                else:
                    self.log("stopping")
                    return
            now = time.monotonic()
            t0 = self.first_request if a.schedule_from == "first" \
                else self.t_start
            while schedule and t0 is not None and now >= t0 + schedule[0][0]:
                at, n = schedule.pop(0)
                self.set_workers(n, "schedule at %gs" % at)
            if now >= next_report:
                next_report += 1
                if not a.quiet:
                    with self.lock:
                        served, q = self.served, len(self.queue)
                        svc = self.svc_sum / self.svc_n if self.svc_n else 0
                        self.svc_sum, self.svc_n = 0.0, 0
                        gone = self.served_gone
                    self.log("served %d/s queue %d workers %d svc %.1f ms "
                             "accepted %d received %d unwritable %d"
                             % (served - last_served, q, self.workers,
                                svc * 1000, self.accepted, self.received,
                                gone))
                    last_served = served

    def on_signal(self, signum, frame):
        self.signals.append(signum)
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def log(self, msg):
        print("[collapse %.3f] %s" % (time.monotonic() - self.t_start, msg),
              file=sys.stderr, flush=True)


def parse_schedule(s):
    out = []
    for part in filter(None, (p.strip() for p in s.split(","))):
        at, _, n = part.partition(":")
        try:
            out.append((float(at), int(n)))
        except ValueError:
            raise argparse.ArgumentTypeError("bad schedule entry %r "
                                             "(want SECONDS:WORKERS)" % part)
        if out[-1][1] < 1:
            raise argparse.ArgumentTypeError("workers must be >= 1")
    return sorted(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--service-ms", type=float, default=20.0,
                   help="service time without backlog (default 20)")
    p.add_argument("--degrade", type=float, default=0.1,
                   help="service time grows by this fraction per request "
                        "waiting per worker (default 0.1)")
    p.add_argument("--cap", type=float, default=20.0,
                   help="at most this many times slower (default 20)")
    p.add_argument("--schedule", type=parse_schedule, default=[],
                   help='worker changes, "SECONDS:WORKERS,..."')
    p.add_argument("--schedule-from", choices=("first", "start"),
                   default="first",
                   help="schedule clock starts at the first request "
                        "(default) or at start-up")
    p.add_argument("--max-workers", type=int, default=256)
    p.add_argument("--backlog", type=int, default=65535,
                   help="listen backlog (the kernel caps it at somaxconn)")
    p.add_argument("--quiet", action="store_true",
                   help="no per-second report on stderr")
    args = p.parse_args()
    if args.workers < 1 or args.service_ms < 0:
        p.error("workers must be >= 1 and service-ms >= 0")
    b = Backend(args)
    for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(s, b.on_signal)
    b.run()


if __name__ == "__main__":
    main()
