"""A small recording stand-in for the W&B server on 127.0.0.1, for the real
`wandb sync` (FORMATS.md 1.5c): it answers the few GraphQL, file_stream and
upload requests the 0.31 client makes and keeps what it was sent.  Only the
server is stood in for; the reader under test, wandb's own, is real."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "x" * 40


class Recording:
    def __init__(self):
        self.lock = threading.Lock()
        self.graphql = []       # (operation name, variables)
        self.streams = []       # file_stream bodies
        self.uploads = {}       # name -> bytes
        self.fail = 0           # answer this many requests with 500

    def operation(self, name):
        with self.lock:
            return [v for n, v in self.graphql if n == name]

    def file_lines(self, name):
        """The lines the client streamed for one file (history, events...)."""
        out = []
        with self.lock:
            for body in self.streams:
                f = (body.get("files") or {}).get(name)
                if f:
                    out.extend(f.get("content") or [])
        return out

    def stream_field(self, key):
        with self.lock:
            return [b[key] for b in self.streams if key in b]


def _operation(query):
    for word in ("UpsertBucket", "ServerFeaturesQuery", "CreateRunFiles", "RunResumeStatus",
                 "Viewer", "ServerInfo", "ProbeServerCapabilities"):
        if word in query:
            return word
    return query.split("(")[0].split()[-1] if query.split() else ""


def start():
    rec = Recording()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_PUT(self):
            body = self._body()
            with rec.lock:
                rec.uploads[self.path.split("/upload/", 1)[-1]] = body
            self._send(200, {})

        def do_GET(self):
            self._send(200, {})

        def do_POST(self):
            body = self._body()
            with rec.lock:
                if rec.fail > 0:
                    rec.fail -= 1
                    return self._send(500, {"error": "stub told to fail"})
            if self.path.startswith("/graphql"):
                req = json.loads(body or b"{}")
                op = req.get("operationName") or _operation(req.get("query", ""))
                v = req.get("variables") or {}
                with rec.lock:
                    rec.graphql.append((op, v))
                port = self.server.server_address[1]
                if op == "UpsertBucket":
                    return self._send(200, {"data": {"upsertBucket": {"bucket": {
                        "id": "x", "name": v.get("name"), "displayName": v.get("displayName"),
                        "config": "{}", "historyLineCount": 0, "sweepName": None,
                        "project": {"id": "p", "name": v.get("project") or "uncategorized",
                                    "entity": {"id": "e", "name": v.get("entity") or "ent"}}},
                        "inserted": True}}})
                if op == "CreateRunFiles":
                    files = v.get("files") or []
                    return self._send(200, {"data": {"createRunFiles": {
                        "runID": "x", "uploadHeaders": [],
                        "files": [{"name": f, "uploadUrl": f"http://127.0.0.1:{port}/upload/{f}"}
                                  for f in files]}}})
                return self._send(200, {"data": {}})
            if "/file_stream" in self.path:
                with rec.lock:
                    rec.streams.append(json.loads(body or b"{}"))
                return self._send(200, {})
            self._send(200, {})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.recording = rec
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    return srv
