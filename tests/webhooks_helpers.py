"""Webhook tests' real receivers: HTTP (and HTTPS) servers on 127.0.0.1 that record every
request and answer from a script, and a guard that fails any connection off 127.0.0.1."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import PROJECT_DIR
from webhooks.models import WebhookEndpoint
from webhooks.services import endpoint_create

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """A threading HTTP server answering each POST with the next status of `answers` (the last
    one repeats). With `hang` set, it holds each request until `release` is set."""

    def __init__(self, answers=(200,), *, body: bytes = b"ok", location: str = "") -> None:
        self.answers = list(answers)
        self.reply_body = body
        self.location = location
        self.requests: list[Received] = []
        self.hang = False
        self.release = threading.Event()
        self.tls: ssl.SSLContext | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                answers = receiver.answers
                status = answers[min(len(receiver.requests), len(answers) - 1)]
                headers = dict(self.headers.items())
                receiver.requests.append(Received(self.path, headers, body, status))
                if receiver.hang:
                    receiver.release.wait(30)
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", str(len(receiver.reply_body)))
                self.end_headers()
                self.wfile.write(receiver.reply_body)

            def log_message(self, format, *args) -> None:  # the test output stays clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self, *, tls: ssl.SSLContext | None = None) -> Receiver:
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def url(self, host: str = "127.0.0.1", *, scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}/hooks"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class ConnectionGuard:
    """Fails every connection a test makes to an address other than 127.0.0.1 (no test may
    send traffic off the machine), and records the webhook-side attempts it saw."""

    def __init__(self, monkeypatch) -> None:
        self.attempts: list[tuple] = []
        real_connect = socket.socket.connect
        guard = self

        def connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard.attempts.append(address)
                assert address[0] in LOOPBACK, f"a test tried to connect to {address}"
            return real_connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)

    def attempts_to(self, port: int) -> list[tuple]:
        return [address for address in self.attempts if address[1] == port]


def endpoint_for(url: str, *events: str, **fields) -> tuple[WebhookEndpoint, str]:
    return endpoint_create(url=url, events=list(events), **fields)


def readme_verify():
    """The receiver's verification recipe, exactly as docs/webhooks.md prints it: the test
    runs that code, not a copy of it."""
    text = (PROJECT_DIR / "docs" / "webhooks.md").read_text()
    section = text.split("**Verifying a delivery**", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    return namespace["verify"]


def certificate_files(folder: Path, *, host: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for `host` signed by it (openssl's command line);
    returns (ca, certificate, key)."""
    ca_key, ca, key, request, cert = (
        folder / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    extensions = folder / "san.cnf"
    extensions.write_text(f"subjectAltName=DNS:{host}\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Test CA",
        "-keyout", str(ca_key), "-out", str(ca),
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", str(key),
        "-out", str(request),
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return ca, cert, key
