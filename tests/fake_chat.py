"""A tiny imitation of an OpenAI-compatible chat-completions server, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator


class ChatState:
    """What the server saw, and ``script``: replies to give, one per request, before the default."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.script: list = []
        self.lock = threading.Lock()


# reply(state, body, scripted) -> (status, text); ``scripted`` is the popped script item or None.
Reply = Callable[[ChatState, dict, object], tuple[int, str]]


@contextlib.contextmanager
def serve_chat(reply: Reply) -> Iterator[tuple[ChatState, str]]:
    state = ChatState()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(body)
                state.headers.append(dict(self.headers))
                scripted = state.script.pop(0) if state.script else None
            status, text = reply(state, body, scripted)
            if self.path != "/v1/chat/completions":
                status, text = 404, "not found"
            payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
            data = json.dumps(payload if status == 200 else {"error": text}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
