"""A Python http.server that counts the requests it has served: under `kvmserver -e` every
request starts from the frozen image, so it always answers 1. argv[1]: the TCP port."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

served = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        served += 1
        body = f"python served {served}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
