"""An asyncio HTTP server that counts the requests it has served in a module-level variable:
under `kvmserver -e` every request starts from the frozen image, so it always answers the same
number. asyncio accepts in a loop until EAGAIN, and makes a socketpair (its self-pipe) before it
listens. argv[1]: the TCP port."""
import asyncio
import sys

served = 0


async def handle(reader, writer):
    global served
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()      # kvmserver's empty wake-up connection, or a client that gave up
        return
    served += 1
    body = f"asyncio served {served}\n".encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                 % (len(body), body))
    await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()


asyncio.run(main())
