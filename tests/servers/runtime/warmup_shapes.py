"""A Python http.server that answers how many requests it has served, how many shapes they
came in (a shape: the request line's version and the header names, in order) and how many of
those shapes are HTTP/1.1's. Under `kvmserver -e -w N` every answer is the frozen image's:
the warm-up's counts, plus one. argv[1]: the TCP port."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

served = 0
shapes = set()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        served += 1
        shapes.add((self.request_version, tuple(name.lower() for name in self.headers.keys())))
        http11 = sum(version == "HTTP/1.1" for version, _ in shapes)
        body = f"served {served} in {len(shapes)} shapes, {http11} of HTTP/1.1\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
