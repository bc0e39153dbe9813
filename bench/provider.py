"""A local message provider for the soak (``bench.soak``): Resend-format email and FCM push, in a process of its own.

Run as ``python -m bench.provider PORT LOG``. It answers

- ``POST /emails`` as Resend does: a repeated ``Idempotency-Key`` gets the first answer and is not delivered again;
- ``POST /v1/projects/<project>/messages:send`` as FCM HTTP v1 does: no key, every accepted request is delivered
  (the message's own key travels in ``data.idempotency_key``, which is how an app, and this log, tell a repeat);
- ``POST /_fail`` with ``{"status": 503, "retry_after": "1"}`` to answer every message with that status from now
  on, ``{"status": null}`` to be healthy again (the soak's 5xx outage).

Every message request is a line of ``LOG`` (JSON), written and flushed before the answer: ``outcome`` is
``delivered``, ``repeat`` (dropped by its key) or the error status. The log is the provider's own account of what
reached a customer, so the soak counts from it and not from our ledger. Stopping the process (SIGTERM) refuses
connections until it is started again on the same port; it reads its log back at start, so a key it delivered
before is still a repeat afterwards.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Provider:
    """The provider's state: keys delivered, the failure mode, the log."""

    def __init__(self, log: Path) -> None:
        self.lock = threading.Lock()
        self.answers: dict[str, dict[str, Any]] = {}
        self.failing: dict[str, Any] | None = None
        if log.exists():
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                if entry["outcome"] == "delivered" and entry["channel"] == "email":
                    self.answers[entry["key"]] = {"id": entry["id"]}
        self.log = log.open("a")

    def message(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if path == "/emails":
            channel, key = "email", headers.get("idempotency-key", "")
            tags = {t["name"]: t["value"] for t in body.get("tags", [])}
        else:
            data = body.get("message", {}).get("data", {})
            channel, key, tags = "push", data.get("idempotency_key", ""), data
        entry: dict[str, Any] = {"t": time.time(), "channel": channel, "key": key, "step": tags.get("step")}
        with self.lock:
            failing = self.failing
            if failing is not None:
                entry["outcome"] = failing["status"]
                answer: tuple[int, dict[str, str], Any] = (
                    int(failing["status"]),
                    {"Retry-After": str(failing["retry_after"])} if failing.get("retry_after") else {},
                    {"error": "unavailable"},
                )
            elif channel == "email" and key in self.answers:
                entry["outcome"] = "repeat"
                answer = (200, {}, self.answers[key])
            else:
                entry["outcome"], entry["id"] = "delivered", f"m-{uuid.uuid4().hex}"
                result = {"id": entry["id"]} if channel == "email" else {"name": f"projects/p/messages/{entry['id']}"}
                if channel == "email":
                    self.answers[key] = result
                answer = (200, {}, result)
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()
        return answer


def serve(port: int, log: Path) -> None:
    provider = Provider(log)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                content = self.rfile.read(length)
            except ConnectionResetError:
                return
            if len(content) < length:
                return  # the caller died mid-request (a SIGKILLed worker): nothing was asked
            body = json.loads(content or b"{}")
            headers: dict[str, str] = {}
            if self.path == "/_fail":
                with provider.lock:
                    provider.failing = body if body.get("status") else None
                status, answer = 200, {"failing": provider.failing}
            else:
                status, headers, answer = provider.message(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller is gone (a killed worker): the message was delivered all the same

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = False  # so server_close() waits for the requests in hand
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print("ready", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()  # waits for requests in hand: their lines are in the log
    provider.log.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
