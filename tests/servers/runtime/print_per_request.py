"""A Python http.server that prints a 3,000-byte line to stdout for every request it
serves, without flushing: with stdout a pipe or a file, Python keeps it in an 8 KiB buffer
in the process's own memory, which it writes out when the third line does not fit.
argv[1]: the TCP port."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        print("served a request ".ljust(3000, "."))
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
