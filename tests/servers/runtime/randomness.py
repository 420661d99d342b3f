"""A Python http.server that answers with fresh random values from each of its APIs, and its
pid: under `kvmserver -e` no two requests may see the same cryptographic value (see
tests/e2e/test_randomness.py). The `random` module is non-cryptographic: its state is in the
frozen image, so it is reported but not expected to differ. argv[1]: the TCP port."""
import os
import random
import secrets
import sys
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        fields = {"pid": os.getpid(), "uuid": uuid.uuid4(), "token": secrets.token_hex(8),
                  "urandom": os.urandom(8).hex(), "random": random.random()}
        body = (" ".join(f"{k}={v}" for k, v in fields.items()) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
