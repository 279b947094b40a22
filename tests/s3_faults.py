"""A TCP relay on loopback in front of the test S3 server that fails the
first connections it gets on purpose — with an HTTP 503 answer or by
closing the connection — and relays the rest byte for byte, so a client's
retries meet real transient faults.  (The client signs the Host header it
sends, which the relay passes on unchanged, so signatures still match.)"""
from __future__ import annotations

import socket
import threading
from typing import List, Optional

_BODY = (b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
         b"</Error>\n")
SLOW_DOWN = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
             b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_BODY)) + _BODY


class FlakyRelay:
    """``fail_first`` connections fail (``mode``: "503", "reset", or
    "lose-answer": the request is carried out, its answer lost), then
    every connection is relayed to ``target_port``.  Use as a context
    manager; ``endpoint`` is its http:// URL."""

    def __init__(self, target_port: int, fail_first: int, mode: str = "503"):
        self.target = ("127.0.0.1", target_port)
        self.fail_left = fail_first
        self.mode = mode
        self.failed = 0
        self.relayed = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._threads: List[threading.Thread] = []
        self._open: List[socket.socket] = []
        self._closing = False
        self._accept = threading.Thread(target=self._serve, name="flaky-relay", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> "FlakyRelay":
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        try:        # wakes accept() (close alone does not, on Linux)
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._accept.join(timeout=10)
        for s in list(self._open):     # idle keep-alive connections end here
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=10)

    def _serve(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                fail = self.fail_left > 0
                if fail:
                    self.fail_left -= 1
                    self.failed += 1
                else:
                    self.relayed += 1
            t = threading.Thread(target=self._fail if fail else self._relay, args=(conn,),
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _fail(self, conn: socket.socket) -> None:
        if self.mode == "lose-answer":
            return self._lose_answer(conn)
        with conn:
            if self.mode == "503":
                _read_headers(conn)
                conn.sendall(SLOW_DOWN)
            else:       # reset: RST instead of an orderly close
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

    def _upstream(self, conn: socket.socket) -> Optional[socket.socket]:
        """A connection to the server for ``conn`` (both closed at exit)."""
        try:
            up = socket.create_connection(self.target, timeout=30)
        except OSError:
            conn.close()
            return None
        self._open += [conn, up]
        return up

    def _lose_answer(self, conn: socket.socket) -> None:
        """The request reaches the server and is carried out; its answer is
        lost (the client's connection is reset as the answer arrives)."""
        up = self._upstream(conn)
        if up is None:
            return
        t = threading.Thread(target=_pump, args=(conn, up), daemon=True)
        t.start()
        _read_headers(up)           # the server has answered: the work is done
        try:    # (shutdown, not only close: it also wakes the pump's recv)
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()
        up.close()
        t.join(timeout=30)

    def _relay(self, conn: socket.socket) -> None:
        up = self._upstream(conn)
        if up is None:
            return
        back = threading.Thread(target=_pump, args=(up, conn), daemon=True)
        back.start()
        _pump(conn, up)
        for s in (conn, up):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        back.join(timeout=30)
        conn.close()
        up.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Bytes from ``src`` to ``dst`` until ``src`` ends or either fails."""
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass


def _read_headers(conn: socket.socket, limit: int = 1 << 16) -> Optional[bytes]:
    buf = b""
    conn.settimeout(10)
    while b"\r\n\r\n" not in buf and len(buf) < limit:
        try:
            chunk = conn.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf
