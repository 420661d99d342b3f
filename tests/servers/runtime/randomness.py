"""An asyncio HTTP server that answers each connection with fresh random values from each of
Python's APIs, and its pid: under `kvmserver -e` no two requests may see the same
cryptographic value (see tests/e2e/test_randomness.py). The `random` module is
non-cryptographic: its state is in the frozen image, so it is reported but not expected to
differ. argv[1]: the TCP port."""
import asyncio
import os
import random
import secrets
import sys
import uuid


async def answer(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    fields = {"pid": os.getpid(), "uuid": uuid.uuid4(), "token": secrets.token_hex(8),
              "urandom": os.urandom(8).hex(), "random": random.random()}
    body = (" ".join(f"{k}={v}" for k, v in fields.items()) + "\n").encode()
    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()


asyncio.run(main())
