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
from typing import Any

_HEADER = struct.Struct("!Q")
_READ_SIZE = 1 << 18


class Closed(Exception):
    """The other end closed the connection."""


def encode(message: Any) -> bytes:
    """Return the frame for ``message``."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def send(sock: socket.socket, message: Any) -> None:
    """Send one message, blocking until it is written."""
    sock.sendall(encode(message))


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
        self._in = bytearray()
        # Each read lands here: ``recv(n)`` allocates n bytes per call, which for a large n
        # cost several times the read of a small message.
        self._scratch = memoryview(bytearray(_READ_SIZE))
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def queue(self, message: Any) -> None:
        """Queue ``message`` and write as much as the socket takes now."""
        self._out += encode(message)
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
        while True:
            try:
                n = self.sock.recv_into(self._scratch)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.closed = True
                break
            if not n:
                self.closed = True
                break
            self._in += self._scratch[:n]
            if n < _READ_SIZE:
                break
        messages = []
        while len(self._in) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._in)
            end = _HEADER.size + size
            if len(self._in) < end:
                break
            messages.append(pickle.loads(self._in[_HEADER.size : end]))
            del self._in[:end]
        return messages

    def close(self) -> None:
        self.closed = True
        self.sock.close()
