"""Real local stand-ins for the delivery providers: an HTTP server in a thread, and a free-port finder.

The provider server records every request as it arrived (method, path, headers, raw body) and answers from a
script the test sets. Like Resend and Stripe, it honours ``Idempotency-Key``: a repeated key gets the first
answer again and is not delivered a second time, so ``delivered`` is what a customer would have received.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))


Answer = tuple[int, dict[str, str], Any]
"""Status, headers, JSON body."""


@dataclass
class FakeProvider:
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    delivered: list[Request] = field(default_factory=list)
    delay_seconds: float = 0.0
    answer: Callable[[Request], Answer] = lambda r: (200, {}, {"id": f"msg-{time.monotonic_ns()}"})
    _by_key: dict[str, Answer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: Request) -> Answer:
        key = request.headers.get("idempotency-key")
        with self._lock:
            self.requests.append(request)
            if key is not None and key in self._by_key:
                return self._by_key[key]
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        answer = self.answer(request)
        with self._lock:
            if key is not None and key in self._by_key:
                return self._by_key[key]
            if answer[0] < 300:
                self.delivered.append(request)
                if key is not None:
                    self._by_key[key] = answer
        return answer


@contextmanager
def provider_server() -> Iterator[FakeProvider]:
    fake = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                content = self.rfile.read(length)
            except ConnectionResetError:
                return
            if len(content) < length:
                # The caller died mid-request (a SIGKILLed worker): a real server drops the half a request too.
                return
            request = Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, content)
            status, headers, body = fake.handle(request)
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller is gone (a killed worker): the provider has the message all the same

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
