"""A small HTTP-aware TCP proxy that a test drives to break the path between
metrictap and the MLflow server: down (connections refused), up, answer the
next N matching requests with 500 or 429 itself, or forward them and cut the
connection before the server's answer reaches the client (the request was
applied but the client cannot know), or close it before forwarding (never
applied, but the client cannot know that either).  A schedule fails a fixed
share of all requests: every Nth, or a random share with a seed.  Loopback
only."""
import random
import socket
import threading
import time


class FaultProxy:
    def __init__(self, upstream_port, host="127.0.0.1"):
        self.host = host
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.rules = []  # [action, path_substring, remaining, body_substring]
        self.seen = []  # (method, path, action)
        self.listener = None
        self.port = None
        self.closing = False
        self.schedule = None  # (every, rate, actions, rng, path)
        self.nreq = 0
        s = socket.socket()
        s.bind((host, 0))
        self.port = s.getsockname()[1]
        s.close()
        self.up()

    # ---- control ----
    def up(self):
        with self.lock:
            if self.listener:
                return
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            s.listen(64)
            self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self):
        """Refuse new connections and reset the open ones."""
        with self.lock:
            s, self.listener = self.listener, None
        if s:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def inject(self, action, path="log-batch", count=1, body=None):
        """action: '500', '429', '401', 'cut', 'close' or 'drop', for the next `count` requests whose
        path (and body, if given) contain the substrings."""
        with self.lock:
            self.rules.append([action, path, count, body.encode() if body else None])

    def fail_every(self, n, action="500", path=""):
        """Answer every nth request (whose path contains `path`) with action."""
        with self.lock:
            self.schedule = (n, 0.0, [action], None, path)

    def fail_random(self, rate, actions=("500",), seed=1, path=""):
        """Fail a random share `rate` of the requests, each with one of actions."""
        with self.lock:
            self.schedule = (0, rate, list(actions), random.Random(seed), path)

    def clear(self):
        with self.lock:
            self.rules = []
            self.seen = []
            self.schedule = None

    def count(self, path_sub, action=None):
        with self.lock:
            return sum(1 for m, p, a in self.seen if path_sub in p and (action is None or a == action))

    def close(self):
        self.closing = True
        self.down()

    # ---- the proxy ----
    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                if self.listener is not s:
                    c.close()
                    return
            threading.Thread(target=self._serve, args=(c, s), daemon=True).start()

    @staticmethod
    def _read_request(c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, buf
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(rest) < length:
            d = c.recv(65536)
            if not d:
                return None, b""
            rest += d
        return (head, rest[:length]), rest[length:]

    @staticmethod
    def _keepalive(resp):
        head, sep, body = resp.partition(b"\r\n\r\n")
        lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
        names = {l.split(b":", 1)[0].strip().lower() for l in lines[1:]}
        if b"content-length" not in names and b"transfer-encoding" not in names:
            lines.append(b"Content-Length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _take_rule(self, path, body):
        with self.lock:
            if self.schedule and self.schedule[4] in path:
                every, rate, actions, rng, _ = self.schedule
                self.nreq += 1
                if every and self.nreq % every == 0:
                    return actions[0]
                if rng and rng.random() < rate:
                    return rng.choice(actions)
            for r in self.rules:
                if r[2] > 0 and r[1] in path and (r[3] is None or r[3] in body):
                    r[2] -= 1
                    return r[0]
        return None

    def _serve(self, c, listener):
        buf = b""
        try:
            while True:
                req, buf = self._read_request(c, buf)
                if req is None:
                    return
                head, body = req
                with self.lock:
                    if self.listener is not listener:
                        return  # went down while the connection was open
                first = head.split(b"\r\n", 1)[0].decode("latin-1")
                method, path = first.split(" ")[:2]
                action = self._take_rule(path, body)
                with self.lock:
                    self.seen.append((method, path, action or "fwd"))
                if action == "drop":
                    return  # closed before forwarding: the server never saw it
                if action in ("500", "429", "401"):
                    msg = b'{"error_code":"INTERNAL_ERROR","message":"injected"}'
                    status = {"500": b"500 Internal Server Error", "429": b"429 Too Many Requests",
                              "401": b"401 Unauthorized"}[action]
                    if action == "401":
                        msg = b'{"error_code":"UNAUTHENTICATED","message":"bad credentials"}'
                    extra = b"Retry-After: 1\r\n" if action == "429" else b""
                    c.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra +
                              b"Content-Length: " + str(len(msg)).encode() + b"\r\n\r\n" + msg)
                    continue
                lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
                lines.append(b"Connection: close")
                u = socket.create_connection((self.host, self.upstream_port), timeout=60)
                try:
                    u.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
                    resp = b""
                    while True:
                        d = u.recv(65536)
                        if not d:
                            break
                        resp += d
                finally:
                    u.close()
                if action in ("cut", "close"):
                    # the server has answered: it applied the request; the client never
                    # hears.  cut resets the connection, close ends it cleanly (what a
                    # keep-alive server that timed the connection out looks like)
                    if action == "cut":
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                if not resp:
                    return
                c.sendall(self._keepalive(resp))
                # the client's connection stays open for its next request, as a
                # keep-alive server's would
        except OSError:
            return
        finally:
            try:
                c.close()
            except OSError:
                pass


def wait_until(pred, timeout, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
