"""Framed messages over a stream socket.

A frame is an 8-byte big-endian length followed by that many bytes of pickle.

The worker's side blocks (:func:`send`, :func:`recv`). The main process's side never blocks
(:class:`Channel`): it queues what it sends and writes when the socket is writable, and it
reads whatever arrived into a buffer and cuts frames out of it. This is what rules out the
classic deadlock of two processes each blocked writing a large message to the other while
neither reads.

Standard library only: the worker imports it.
"""

from __future__ import annotations

import pickle
import socket
import struct
import threading
from typing import Any

_HEADER = struct.Struct("!Q")
_READ_SIZE = 1 << 18


class Closed(Exception):
    """The other end closed the connection."""


def _frame(message: Any) -> tuple[bytes, bytes]:
    """The frame for ``message`` in its two parts: header and body, left apart so that a
    large body is never copied to join them."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)), body


def encode(message: Any) -> bytes:
    """Return the frame for ``message``."""
    header, body = _frame(message)
    return header + body


def send(sock: socket.socket, message: Any) -> None:
    """Send one message, blocking until it is written."""
    header, body = _frame(message)
    if not hasattr(sock, "sendmsg"):  # (Windows)
        sock.sendall(header + body)
        return
    # Header and body in one system call, without copying a chunk's results into a frame.
    sent = sock.sendmsg([header, body])
    if sent < len(header) + len(body):  # interrupted part way
        sock.sendall(memoryview(header + body)[sent:])


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise Closed
        got += n
    return buf


def recv(sock: socket.socket) -> Any:
    """Receive one message, blocking until it has arrived; raise :class:`Closed` at EOF."""
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return pickle.loads(_recv_exactly(sock, size))


class Channel:
    """The main process's non-blocking end of one worker's socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._out = bytearray()
        self._in = bytearray()  # the start of a frame still to come
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def queue(self, message: Any) -> None:
        """Queue ``message`` and write as much as the socket takes now."""
        header, body = _frame(message)
        self._out += header
        self._out += body
        self.flush()

    def flush(self) -> None:
        """Write queued bytes until the socket would block."""
        while self._out and not self.closed:
            try:
                n = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the worker is gone; its sentinel tells the rest
                self.closed = True
                self._out.clear()
                return
            del self._out[:n]

    def read(self) -> list[Any]:
        """Read what has arrived; return the complete messages. Mark closed at EOF."""
        scratch = _scratch()
        messages: list[Any] = []
        while True:
            try:
                n = self.sock.recv_into(scratch)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.closed = True
                break
            if not n:
                self.closed = True
                break
            if self._in:
                self._in += scratch[:n]
            else:
                # The usual case: whole frames, read straight from the scratch buffer.
                used = _cut(scratch[:n], messages)
                self._in += scratch[used:n]
            if n < _READ_SIZE:
                break
        if len(self._in) >= _HEADER.size:
            with memoryview(self._in) as view:
                used = _cut(view, messages)
            del self._in[:used]
        return messages

    def close(self) -> None:
        self.closed = True
        self.sock.close()


# Each read lands in a buffer of this thread's (``recv(n)`` allocates n bytes per call, which
# for a large n cost several times the read of a small message); one per channel cost every
# new worker a quarter MiB, written after the fork (copy-on-write faults in the main process).
_LOCAL = threading.local()


def _scratch() -> memoryview:
    scratch: memoryview | None = getattr(_LOCAL, "scratch", None)
    if scratch is None:
        scratch = _LOCAL.scratch = memoryview(bytearray(_READ_SIZE))
    return scratch


def _cut(data: memoryview, messages: list[Any]) -> int:
    """Append the messages of the whole frames at the start of ``data``; return the bytes
    they took (a frame still incomplete stays)."""
    pos, total = 0, len(data)
    while total - pos >= _HEADER.size:
        (size,) = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + size
        if end > total:
            break
        messages.append(pickle.loads(data[pos + _HEADER.size : end]))
        pos = end
    return pos
