"""Framed messages over a stream socket.

A frame is a 16-byte header, two big-endian lengths (the message's pickle, and the data sent
out of band), followed by those bytes. A message's first ``bytes`` field of at least
``OUT_OF_BAND_MIN`` bytes (a chunk's pickled arguments or results) goes out of band, with
pickle's protocol 5: it is written from the sender's own buffer, and not copied into the
message's pickle and out of it again. The receiver gets that field as a read-only buffer,
which ``pickle.loads`` takes as it takes bytes.

The worker's side blocks (:func:`send`, :func:`recv`). The main process's side never blocks
(:class:`Channel`): it queues what it sends and writes when the socket is writable, and it
reads whatever arrived into a buffer and cuts frames out of it. This is what rules out the
classic deadlock of two processes each blocked writing a large message to the other while
neither reads.

Standard library only: the worker imports it.
"""

from __future__ import annotations

import itertools
import pickle
import socket
import struct
import threading
from collections import deque
from typing import Any

_HEADER = struct.Struct("!QQ")
_READ_SIZE = 1 << 18
OUT_OF_BAND_MIN = 1 << 14
_IOV_MAX = 1024  # buffers one sendmsg() takes (POSIX's minimum for IOV_MAX is 16)


class Closed(Exception):
    """The other end closed the connection."""


def _frame(message: Any) -> list[bytes]:
    """The frame for ``message`` as the buffers to write in turn: the header, the pickle,
    and the out-of-band data if any. Left apart, so that a large part is never copied to
    join them."""
    raw = None
    fields = getattr(message, "__dict__", None)  # (a dataclass of _messages)
    for name, value in fields.items() if fields is not None else ():
        if type(value) is bytes and len(value) >= OUT_OF_BAND_MIN:
            # A shallow copy with that field wrapped (copy.copy() took 0.1 ms in a worker).
            raw, message = value, object.__new__(type(message))
            message.__dict__.update(fields, **{name: pickle.PickleBuffer(value)})
            break
    if raw is None:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        return [_HEADER.pack(len(body), 0), body]
    body = pickle.dumps(message, protocol=5, buffer_callback=_out_of_band)
    return [_HEADER.pack(len(body), len(raw)), body, raw]


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    return False  # (pickle's buffer_callback: a false value sends the buffer out of band)


def _load(body: Any, raw: Any) -> Any:
    return pickle.loads(body, buffers=(raw,) if raw is not None else None)


def encode(message: Any) -> bytes:
    """Return the frame for ``message``."""
    return b"".join(_frame(message))


def send(sock: socket.socket, message: Any) -> None:
    """Send one message, blocking until it is written."""
    parts = _frame(message)
    if not hasattr(sock, "sendmsg"):  # (Windows)
        sock.sendall(b"".join(parts))
        return
    # Every part in one system call, without copying a chunk's results into a frame.
    pending: deque[bytes | memoryview] = deque(parts)
    while pending:
        _consume(pending, sock.sendmsg(pending))


def _consume(pending: deque[bytes | memoryview], sent: int) -> None:
    """Drop the first ``sent`` bytes of the buffers in ``pending``."""
    while sent:
        first = pending[0]
        if sent < len(first):
            pending[0] = memoryview(first)[sent:]
            return
        sent -= len(first)
        pending.popleft()


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
    size, extra = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    if not extra:
        return pickle.loads(_recv_exactly(sock, size))
    # One buffer for both: the out-of-band field is a view of it (see the module's docstring).
    view = memoryview(_recv_exactly(sock, size + extra))
    return _load(view[:size], view[size:])


class Channel:
    """The main process's non-blocking end of one worker's socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._out: deque[bytes | memoryview] = deque()  # parts of frames still to write
        self._in = bytearray()  # the start of a frame still to come
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def queue(self, message: Any) -> None:
        """Queue ``message`` and write as much as the socket takes now."""
        self._out.extend(_frame(message))
        self.flush()

    def flush(self) -> None:
        """Write queued bytes until the socket would block."""
        while self._out and not self.closed:
            try:
                if len(self._out) == 1 or not hasattr(self.sock, "sendmsg"):
                    n = self.sock.send(self._out[0])
                else:
                    n = self.sock.sendmsg(itertools.islice(self._out, _IOV_MAX))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the worker is gone; its sentinel tells the rest
                self.closed = True
                self._out.clear()
                return
            _consume(self._out, n)

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
        size, extra = _HEADER.unpack_from(data, pos)
        body = pos + _HEADER.size
        end = body + size + extra
        if end > total:
            break
        if extra:
            # Copied out: ``data`` is the read buffer, which the next read writes over (and a
            # view of ``Channel._in`` would stop it from shrinking).
            messages.append(_load(data[body : body + size], bytes(data[body + size : end])))
        else:
            messages.append(pickle.loads(data[body:end]))
        pos = end
    return pos
