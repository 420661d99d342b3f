"""A server on a port the kernel picks: argv[1] "bind0" binds 127.0.0.1 port 0, "unbound"
listens without binding. It prints the port getsockname reports, then answers every request
with the port getsockname reports then."""
import socket
import sys

listener = socket.socket()
if sys.argv[1] == "bind0":
    listener.bind(("127.0.0.1", 0))
listener.listen()
print(f"port {listener.getsockname()[1]}", flush=True)
while True:
    conn, _ = listener.accept()
    conn.recv(65536)
    body = f"port {listener.getsockname()[1]}\n".encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % len(body) + body)
    conn.close()
