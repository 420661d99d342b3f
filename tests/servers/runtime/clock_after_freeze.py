"""A Python http.server that tells what its clocks and timers say at each request, to show
what a request VM sees of the time between the freeze and its request. Its first request
(under -w, the warm-up's) arms two timers LATE seconds on: "thread" (threading.Timer, a
futex wait with an absolute CLOCK_MONOTONIC end, run while a request sleeps 50 ms) and
"itimer" (setitimer(ITIMER_REAL), SIGALRM). Each request answers JSON: mono, real, boot,
the seconds since the timers were armed on CLOCK_MONOTONIC, CLOCK_REALTIME and
CLOCK_BOOTTIME, and fired, the timers that have fired.
argv[1]: LATE; argv[2]: the TCP port."""
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

LATE = float(sys.argv[1])
CLOCKS = {"mono": time.CLOCK_MONOTONIC, "real": time.CLOCK_REALTIME,
          "boot": time.CLOCK_BOOTTIME}
armed = None
fired = []


def on_alarm(signo, frame):
    fired.append("itimer")


def arm():
    global armed
    armed = {name: time.clock_gettime(clock) for name, clock in CLOCKS.items()}
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, LATE)
    threading.Timer(LATE, lambda: fired.append("thread")).start()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if armed is None:
            arm()
        time.sleep(0.05)        # other threads' turn: a timer thread that is due runs now
        now = {name: time.clock_gettime(clock) - armed[name] for name, clock in CLOCKS.items()}
        now["fired"] = sorted(fired)
        body = json.dumps(now).encode()
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
