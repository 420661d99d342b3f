"""Configuration files for nginx and HAProxy in front of kvmserver, made from the shipped
recipes (contrib/) by replacing only their socket path and port. Used by tests/e2e/test_proxy.py
and, as a command, by bench/proxy.sh: `proxies.py nginx|haproxy DIR SOCKET PORT` writes the
file into DIR and prints its path.
"""
import os
import sys
from pathlib import Path

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
SHIPPED_SOCKET = "/run/kvmserver/app.sock"


def nginx_config(tmp: Path, socket_path: str, port: int) -> Path:
    site = (CONTRIB / "nginx" / "kvmserver.conf").read_text()
    assert f"unix:{SHIPPED_SOCKET}" in site and "listen 127.0.0.1:8080;" in site
    site = site.replace(SHIPPED_SOCKET, socket_path).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    # The site file is what /etc/nginx/conf.d holds; around it, what a private nginx needs.
    # Run as root, nginx's workers would be nobody, who may not connect to root's socket.
    user = "user root;" if os.geteuid() == 0 else ""
    temp = " ".join(f"{kind}_temp_path {tmp}/{kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = tmp / "nginx.conf"
    config.write_text(f"""{user}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    {temp}
{site}
}}
""")
    return config


def haproxy_config(tmp: Path, socket_path: str, port: int) -> Path:
    text = (CONTRIB / "haproxy" / "kvmserver.cfg").read_text()
    assert f"unix@{SHIPPED_SOCKET}" in text and "bind 127.0.0.1:8081" in text
    config = tmp / "haproxy.cfg"
    config.write_text(text.replace(SHIPPED_SOCKET, socket_path)
                      .replace("127.0.0.1:8081", f"127.0.0.1:{port}"))
    return config


if __name__ == "__main__":
    kind, folder, socket_path, port = sys.argv[1:5]
    make = nginx_config if kind == "nginx" else haproxy_config
    print(make(Path(folder), socket_path, int(port)))
