"""A unix SOCK_SEQPACKET server (argv[1]: its path) that answers each message with "ok". An
HTTP warm-up, which connects with a stream socket, cannot reach it."""
import socket
import sys

listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
listener.bind(sys.argv[1])
listener.listen()
while True:
    conn, _ = listener.accept()
    conn.recv(4096)
    conn.send(b"ok")
    conn.close()
