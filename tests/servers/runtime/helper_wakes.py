"""A Python http.server that wakes a helper thread at every third request it serves, as a
garbage-collected runtime wakes its collector's threads every so many requests. It answers
how many requests it has served and how many times the helper ran. Under `kvmserver -e -w N`
the warm-up goes on past N until a request woke the helper, so the image is frozen just after
one. argv[1]: the TCP port."""
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

served = 0
helper_runs = 0
work = threading.Condition()
work_due = False


def helper():
    global helper_runs, work_due
    with work:
        while True:
            while not work_due:
                work.wait()
            work_due = False
            helper_runs += 1


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global served, work_due
        served += 1
        if served % 3 == 0:
            with work:
                work_due = True
                work.notify()
        body = f"served {served}, helper ran {helper_runs}\n".encode()
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def log_message(self, *args):
        pass


threading.Thread(target=helper, daemon=True).start()
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
