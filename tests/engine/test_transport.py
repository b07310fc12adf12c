"""The framed transport between the main process and a worker, over a real socket pair.

Unix socket pairs deliver what one end sends to the other's buffer at once, so these tests
drive both ends from one thread, step by step, with no waiting.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import threading
from array import array
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_ploop._engine import _transport, _workers
from pytest_ploop._engine._messages import ChunkDone
from pytest_ploop._engine._transport import Channel, encode


@pytest.fixture
def pair() -> Iterator[tuple[Channel, socket.socket]]:
    """A main-process channel and the raw worker end of the same socket pair."""
    main_end, worker_end = socket.socketpair()
    for end in (main_end, worker_end):  # as a worker's: 4 MiB where the kernel allows it
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _workers._SOCKET_BUFFER)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _workers._SOCKET_BUFFER)
    channel = Channel(main_end)
    yield channel, worker_end
    channel.close()
    worker_end.close()


def _pump_into(channel: Channel, sender: socket.socket, data: bytes) -> list[object]:
    """Send ``data`` from ``sender`` as fast as the socket takes it, reading on the channel
    in between; return every message read."""
    sender.setblocking(False)
    view, sent, messages = memoryview(data), 0, []
    while sent < len(data):
        with contextlib.suppress(BlockingIOError):
            sent += sender.send(view[sent:])
        messages += channel.read()
    messages += channel.read()
    return messages


def test_a_message_several_times_the_read_buffer_arrives_whole(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    big = os.urandom(5 * (1 << 20) + 123)  # over 20 reads of the 256 KiB buffer
    assert len(big) > 20 * _transport._READ_SIZE
    messages = _pump_into(channel, worker_end, encode(big) + encode("after"))
    assert messages == [big, "after"]
    assert not channel.closed


def test_one_read_takes_everything_that_has_arrived(pair: tuple[Channel, socket.socket]) -> None:
    channel, worker_end = pair
    if worker_end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < 2 << 20:
        pytest.skip("the kernel caps socket buffers below 1 MiB (net.core.wmem_max)")
    body = os.urandom(900 * 1024)  # more than three of the channel's reads
    worker_end.sendall(encode(body))  # fits in the socket's buffer: the whole frame is there
    assert channel.read() == [body]


def test_frames_cut_anywhere_are_returned_only_once_complete(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    stream = b"".join(encode(("msg", i, "x" * i)) for i in range(50))
    got: list[object] = []
    # Cut the stream at every length from 1 to 17 bytes in turn: headers and bodies split.
    pos, step = 0, 1
    while pos < len(stream):
        worker_end.sendall(stream[pos : pos + step])
        pos += step
        step = step % 17 + 1
        got += channel.read()
    assert got == [("msg", i, "x" * i) for i in range(50)]


def test_a_queued_message_larger_than_the_socket_buffer_is_written_as_it_drains(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    big = os.urandom(12 * (1 << 20))  # more than both sockets buffer together
    channel.queue(big)  # never blocks: what the socket does not take waits in the channel
    assert channel.wants_write
    frame, received = encode(big), bytearray()
    while channel.wants_write or len(received) < len(frame):
        received += worker_end.recv(1 << 16)
        channel.flush()
    assert bytes(received) == frame


def test_both_ends_sending_large_messages_at_once_do_not_deadlock(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    to_worker, to_main = os.urandom(12 << 20), os.urandom(12 << 20)
    channel.queue(to_worker)
    outgoing = memoryview(encode(to_main))
    worker_end.setblocking(False)
    sent, received, messages = 0, bytearray(), []
    expected = len(encode(to_worker))
    while sent < len(outgoing) or len(received) < expected or not messages:
        if sent < len(outgoing):
            with contextlib.suppress(BlockingIOError):
                sent += worker_end.send(outgoing[sent:])
        with contextlib.suppress(BlockingIOError):
            received += worker_end.recv(1 << 16)
        channel.flush()
        messages += channel.read()
    assert messages == [to_main]
    assert bytes(received) == encode(to_worker)


def test_the_other_end_closing_marks_the_channel_closed(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    worker_end.sendall(encode("last words"))
    worker_end.close()
    messages = channel.read()  # a short read returns at once; EOF shows on the next
    messages += channel.read()
    assert messages == ["last words"]
    assert channel.closed


def test_blocking_recv_raises_closed_at_eof() -> None:
    a, b = socket.socketpair()
    with a, b:
        _transport.send(a, {"k": 1})
        assert _transport.recv(b) == {"k": 1}
        a.close()
        with pytest.raises(_transport.Closed):
            _transport.recv(b)


def test_each_thread_reads_into_a_buffer_of_its_own() -> None:
    """Channels share a read buffer, which is safe only within one thread: runs driven from
    two threads at once (a ``ploop.map`` in each) must not read into the same one."""
    ours = _transport._scratch()
    seen: list[memoryview] = []
    thread = threading.Thread(target=lambda: seen.append(_transport._scratch()))
    thread.start()
    thread.join()
    assert _transport._scratch() is ours
    assert seen[0].obj is not ours.obj


def _chunk_done(values: bytes, seq: int = 1) -> ChunkDone:
    return ChunkDone(1, seq, values, {}, 0.0, array("d"), array("d", [0.5]))


def test_a_large_bytes_field_is_sent_from_its_own_buffer_not_copied_into_the_pickle() -> None:
    values = pickle.dumps(list(range(50_000)))
    assert len(values) >= _transport.OUT_OF_BAND_MIN
    header, body, raw = _transport._frame(_chunk_done(values))
    assert raw is values  # written from the sender's bytes object: no copy
    assert len(body) < 1024 and len(header) == _transport._HEADER.size
    small = _transport._frame(_chunk_done(b"x" * 100))
    assert len(small) == 2  # a small field stays in the pickle


def test_an_out_of_band_field_arrives_whole_at_both_ends(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    values = pickle.dumps([os.urandom(64) for _ in range(1500)])  # within any socket buffer
    message = _chunk_done(values)
    _transport.send(worker_end, message)  # the worker's blocking side, to the channel
    (got,) = _pump_into(channel, worker_end, b"")
    assert isinstance(got, ChunkDone) and bytes(got.values) == values
    assert pickle.loads(got.values) == pickle.loads(values)
    channel.queue(message)  # the channel's side, to the worker's blocking recv
    while channel.wants_write:
        channel.flush()
    again = _transport.recv(worker_end)
    assert bytes(again.values) == values and again.seq == message.seq


def test_out_of_band_frames_cut_anywhere_are_returned_only_once_complete(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    blobs = [bytes([i]) * (_transport.OUT_OF_BAND_MIN + 7 * i) for i in range(6)]
    stream = b"".join(
        encode(_chunk_done(b, seq)) + encode(("between", seq)) for seq, b in enumerate(blobs)
    )
    got: list[Any] = []
    pos, step = 0, 1
    while pos < len(stream):
        chunk = 5003 if step == 17 else step  # odd steps, and now and then a longer one
        worker_end.sendall(stream[pos : pos + chunk])
        pos += chunk
        step = step % 17 + 1
        got += channel.read()
    assert [(m.seq, bytes(m.values)) for m in got[::2]] == list(enumerate(blobs))
    assert got[1::2] == [("between", seq) for seq in range(6)]


def test_a_queued_out_of_band_message_larger_than_the_socket_buffers_is_written_as_it_drains(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, worker_end = pair
    values = os.urandom(12 * (1 << 20))
    channel.queue(_chunk_done(values))
    channel.queue("after")
    assert channel.wants_write
    frames = encode(_chunk_done(values)) + encode("after")
    received = bytearray()
    while channel.wants_write or len(received) < len(frames):
        received += worker_end.recv(1 << 16)
        channel.flush()
    assert bytes(received) == frames
