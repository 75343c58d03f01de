"""A loopback stand-in for the ZeroGPU device API, so the real `spaces` client can schedule, allow and release.

It speaks what spaces 0.51.3 sends and reads (spaces/zero/api.py and client.py): POST /startup-report,
POST /schedule (query cgroupPath, taskId, enableQueue, tokenVersion, durationSeconds, gpuSize, token), POST /allow
(allowToken, pid), POST /release (allowToken, fail) and GET /queue-size. /schedule answers with a scripted Answer:

- Grant: 200 with {idle, nvidiaIndex, nvidiaUUID, allowToken}, as JSON or, queued, as an event stream ending in
  "succeeded"; `idle` tells spaces whether the worker it kept from the last call may run this one.
- QuotaExceeded: 429 with {left, wait} (seconds); spaces raises gr.Error "Space app has reached its GPU limit..."
  without an X-IP-Token header, "You have exceeded your ZeroGPU quota (...)" with one.
- NoGpu: queued, an event stream ending in "failed" (gr.Error "No GPU was available after 60s..."); not queued,
  503 (gr.Error "No GPU was available").
- DurationTooLong: 429 with a negative wait (gr.Error "The requested GPU duration (Ns) is larger than the maximum
  allowed").
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Union
from urllib.parse import parse_qsl, urlsplit

NVIDIA_UUID = "MIG-00000000-0000-0000-0000-000000000000"
EVENT_GAP_SECONDS = 0.05  # spaces parses each received text chunk as one event: events must not share a chunk


@dataclass(frozen=True)
class Grant:
    """A GPU for the call; `idle` lets spaces reuse the worker it kept, `queued` answers as an event stream."""

    idle: bool = True
    queued: bool = False
    nvidia_index: int = 0


@dataclass(frozen=True)
class QuotaExceeded:
    """The visitor's (or the Space's) GPU quota is spent: `left` seconds remain, `wait` seconds until more."""

    left: int = 0
    wait: float = 60.0


@dataclass(frozen=True)
class NoGpu:
    """No GPU came free: queued, after a wait in the queue (event "failed"); not queued, at once (503)."""

    queued: bool = True


@dataclass(frozen=True)
class DurationTooLong:
    """The duration asked is over the longest the service grants."""


Answer = Union[Grant, QuotaExceeded, NoGpu, DurationTooLong]


@dataclass(frozen=True)
class ApiRequest:
    """One request the stand-in received, with its query parameters and the status it answered."""

    method: str
    endpoint: str
    params: dict[str, str]
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def duration(self) -> int | None:
        """The GPU seconds a /schedule asked for."""
        value = self.params.get("durationSeconds")
        return None if value is None else int(value)

    @property
    def fail(self) -> bool:
        """Whether a /release reported the task as failed."""
        return self.params.get("fail") == "true"


class ZeroGpuScheduler:
    """The stand-in's state: scripted /schedule answers, granted tokens and every request received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: deque[Answer] = deque()
        self._live_tokens: set[str] = set()
        self._granted = 0
        self._requests: list[ApiRequest] = []
        self.url = ""

    def answer_next(self, *answers: Answer) -> None:
        """Answer the next /schedule calls with these, in order; after them, Grant(idle=True) again."""
        with self._lock:
            self._answers.extend(answers)

    def requests(self, endpoint: str | None = None, since: int = 0) -> list[ApiRequest]:
        """The requests received (to one endpoint if named), from the `since`-th request on."""
        with self._lock:
            received = self._requests[since:]
        return [request for request in received if endpoint is None or request.endpoint == endpoint]

    def request_count(self) -> int:
        """How many requests came so far: a mark for `requests(since=...)`."""
        with self._lock:
            return len(self._requests)

    def record(self, method: str, endpoint: str, params: dict[str, str], status: int) -> None:
        """Keep one request for the tests' assertions."""
        with self._lock:
            self._requests.append(ApiRequest(method, endpoint, params, status))

    def next_answer(self) -> Answer:
        """The scripted answer for this /schedule (a reusable-worker grant when none is scripted)."""
        with self._lock:
            return self._answers.popleft() if self._answers else Grant()

    def grant(self, answer: Grant) -> dict:
        """A new allow token for a granted call, in the shape of spaces' ScheduleResponse."""
        with self._lock:
            self._granted += 1
            token = f"allow-{self._granted}"
            self._live_tokens.add(token)
        return {"idle": answer.idle, "nvidiaIndex": answer.nvidia_index, "nvidiaUUID": NVIDIA_UUID,
                "allowToken": token}

    def is_live(self, token: str | None) -> bool:
        """Whether a token was granted and not released yet."""
        with self._lock:
            return token in self._live_tokens

    def retire(self, token: str | None) -> bool:
        """End a granted token's life; False when it was never granted or already released."""
        with self._lock:
            if token not in self._live_tokens:
                return False
            self._live_tokens.discard(token)
            return True


@dataclass(frozen=True)
class _Reply:
    """What to answer: a JSON body, or an event stream of these events."""

    status: int
    payload: object = None
    events: tuple[str, ...] = ()


class _Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests from the scheduler's script."""

    protocol_version = "HTTP/1.1"  # chunked event streams: each event is its own chunk
    server: "_Server"

    def log_message(self, format: str, *args) -> None:
        """Quiet: the records are the log."""

    def do_GET(self) -> None:
        """GET /queue-size (in spaces' API client, though nothing in spaces asks it)."""
        self._answer("GET", {"/queue-size": lambda params: _Reply(200, 0.0)})

    def do_POST(self) -> None:
        """The endpoints spaces calls: startup report at launch, then schedule, allow (worker), release per call."""
        self._answer("POST", {"/startup-report": lambda params: _Reply(200), "/schedule": self._schedule,
                              "/allow": self._allow, "/release": self._release})

    def _answer(self, method: str, routes: dict) -> None:
        """Record the request before replying, so a caller that got its answer finds it recorded."""
        if (length := int(self.headers.get("Content-Length") or 0)) > 0:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query))
        route = routes.get(parts.path, lambda params: _Reply(404, {"detail": "Not Found"}))
        reply = route(params)
        self.server.scheduler.record(method, parts.path, params, reply.status)
        if reply.events:
            self._send_events(reply.events)
        else:
            self._send_json(reply.status, reply.payload)

    def _schedule(self, params: dict[str, str]) -> _Reply:
        answer = self.server.scheduler.next_answer()
        if isinstance(answer, QuotaExceeded):
            return _Reply(429, {"left": answer.left, "wait": answer.wait})
        if isinstance(answer, DurationTooLong):
            return _Reply(429, {"left": 0, "wait": -1.0})
        if isinstance(answer, NoGpu):
            return _Reply(200, events=("event: ping", "event: failed")) if answer.queued else _Reply(503)
        granted = self.server.scheduler.grant(answer)
        if answer.queued:
            return _Reply(200, events=("event: ping", f"event: succeeded\ndata: {json.dumps(granted)}"))
        return _Reply(200, granted)

    def _allow(self, params: dict[str, str]) -> _Reply:
        return _Reply(200 if self.server.scheduler.is_live(params.get("allowToken")) else 404)

    def _release(self, params: dict[str, str]) -> _Reply:
        return _Reply(200 if self.server.scheduler.retire(params.get("allowToken")) else 404)

    def _send_json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_events(self, events: tuple[str, ...]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            chunk = f"{event}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            time.sleep(EVENT_GAP_SECONDS)
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    scheduler: ZeroGpuScheduler

    def handle_error(self, request, client_address) -> None:
        """Quiet about clients that drop their connection (spaces leaves a failed event stream to the GC)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def zerogpu_scheduler() -> Iterator[ZeroGpuScheduler]:
    """Serve the stand-in on a free 127.0.0.1 port for the duration of the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.scheduler = ZeroGpuScheduler()
    server.scheduler.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="zerogpu-scheduler", daemon=True)
    thread.start()
    try:
        yield server.scheduler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
