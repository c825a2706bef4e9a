"""``mhd-sim watch``: a page on loopback that follows a run directory as it grows.

The standard library's threading HTTP server and server-sent events: one thread reads the
run directory about twice a second (``LiveState``) and every open page receives the new
state when something changed. It listens on 127.0.0.1 only, answers only requests whose
Host is that address, and serves the page, the state and the files of that one run
directory (no path leads outside it). Ctrl-C (or SIGTERM) stops it cleanly.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .state import LiveState

POLL_S = 0.5  # how often the run directory is read
KEEPALIVE_S = 15.0  # a comment on an idle stream, so proxies and browsers keep it open
TYPES = {
    ".png": "image/png", ".gif": "image/gif", ".csv": "text/csv", ".json": "application/json",
    ".yaml": "text/plain", ".edges": "text/plain", ".html": "text/html",
}  # fmt: skip


class Watcher:
    """The run directory's state, read again by a thread; pages wait on ``changed``."""

    def __init__(self, run: Path) -> None:
        self.state = LiveState(run)
        self.version, self.document = 0, b"{}"
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.refresh()

    def refresh(self) -> None:
        if self.state.update() or self.version == 0:
            document = self.state.to_json()
            with self.changed:
                self.version, self.document = self.version + 1, document
                self.changed.notify_all()

    def loop(self) -> None:
        while not self.stopping.wait(POLL_S):
            self.refresh()

    def wait_past(self, seen: int, timeout: float) -> tuple[int, bytes]:
        """The newest (version, document) once it is not ``seen``, or after ``timeout``."""
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen or self.stopping.is_set(), timeout)
            return self.version, self.document

    def stop(self) -> None:
        self.stopping.set()
        with self.changed:
            self.changed.notify_all()


def _handler(watcher: Watcher, run: Path, allowed_hosts: set[str]):
    root = run.resolve()
    page = resources.files(__package__).joinpath("page.html").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        server_version = "mhd-sim-watch"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # quiet: the terminal is the run's
            pass

        def do_GET(self) -> None:
            if self.headers.get("Host", "") not in allowed_hosts:  # DNS rebinding
                return self._send(HTTPStatus.FORBIDDEN, b"forbidden host\n", "text/plain")
            path = unquote(urlsplit(self.path).path)
            if path in ("/", "/index.html"):  # with the run's state as it is now, inline
                state = watcher.document.replace(b"</", b"<\\/")  # never ends the script
                body = page.replace(b"/*INITIAL_STATE*/null", state, 1)
                return self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")
            if path == "/state.json":
                return self._send(HTTPStatus.OK, watcher.document, "application/json")
            if path == "/stream":
                return self._stream()
            if path.startswith("/files/"):
                return self._file(path[len("/files/") :])
            return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

        def _file(self, name: str) -> None:
            target = (root / name).resolve()
            if not target.is_relative_to(root) or ".." in Path(name).parts:
                return self._send(
                    HTTPStatus.FORBIDDEN, b"outside the run directory\n", "text/plain"
                )
            if not target.is_file():
                return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            kind = TYPES.get(target.suffix, "application/octet-stream")
            self._send(HTTPStatus.OK, target.read_bytes(), kind)

        def _send(self, code: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            seen = 0
            try:
                while not watcher.stopping.is_set():
                    version, document = watcher.wait_past(seen, KEEPALIVE_S)
                    if version != seen:
                        self.wfile.write(b"id: %d\ndata: " % version + document + b"\n\n")
                        seen = version
                    else:
                        self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page closed

    return Handler


def serve(run: Path, port: int = 0, ready: Callable[[str], None] | None = None) -> None:
    """Serve the page for ``run`` on 127.0.0.1 until Ctrl-C or SIGTERM. ``ready(address)`` is
    called once it listens (port 0: a free one)."""
    watcher = Watcher(Path(run))
    httpd = ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    bound = httpd.server_address[1]
    hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}"}
    httpd.RequestHandlerClass = _handler(watcher, Path(run), hosts)
    reader = threading.Thread(target=watcher.loop, name="watch-reader", daemon=True)
    reader.start()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if ready:
            ready(f"http://127.0.0.1:{bound}/")
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        httpd.server_close()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
