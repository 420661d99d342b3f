"""A Python http.server that tells what its clocks and timers say at each request, to show
what a request VM sees of the time between the freeze and its request. It answers JSON:
  - mono, real, boot: seconds since the program started on CLOCK_MONOTONIC, CLOCK_REALTIME
    and CLOCK_BOOTTIME;
  - since_last: CLOCK_MONOTONIC seconds since the request before (under -e, the image's
    last warm-up request);
  - fired: which of its two timers set LATE seconds after the start have fired: "thread"
    (threading.Timer, a futex wait with an absolute CLOCK_MONOTONIC end, run while the
    request sleeps 50 ms) and "itimer" (setitimer(ITIMER_REAL), SIGALRM).
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
start = {name: time.clock_gettime(clock) for name, clock in CLOCKS.items()}
last = start["mono"]
fired = []


def on_alarm(signo, frame):
    fired.append("itimer")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global last
        time.sleep(0.05)        # other threads' turn: a timer thread that is due runs now
        now = {name: time.clock_gettime(clock) - start[name] for name, clock in CLOCKS.items()}
        mono = time.clock_gettime(time.CLOCK_MONOTONIC)
        now.update(since_last=mono - last, fired=sorted(fired))
        last = mono
        body = json.dumps(now).encode()
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def log_message(self, *args):
        pass


signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, LATE)
threading.Timer(LATE, lambda: fired.append("thread")).start()
HTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
