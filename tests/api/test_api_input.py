"""Bad input gets a clear error naming the case and the fix; what cannot be pickled fails
where it must and nowhere else."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pytest_ploop as ploop
from pytest_ploop._engine import _transport, _worker
from pytest_ploop._engine._messages import Chunk
from tests import faults


def open_fds() -> set[int]:
    """This process's open file descriptors (after collecting garbage that may hold some)."""
    gc.collect()
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


# -- the call --------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["map", "Pool.map", "Pool.imap"])
def test_a_non_iterable_input_is_refused(call: str) -> None:
    with ploop.Pool(2) as pool:
        run: dict[str, Callable[[], Any]] = {
            "map": lambda: ploop.map(faults.square, 5, workers=2),  # type: ignore[arg-type]
            "Pool.map": lambda: pool.map(faults.square, 5),  # type: ignore[arg-type]
            "Pool.imap": lambda: pool.imap(faults.square, None),  # type: ignore[arg-type]
        }
        with pytest.raises(TypeError, match=r"items must be an iterable .*got int 5|got NoneType"):
            run[call]()


def test_a_non_callable_function_is_refused() -> None:
    with pytest.raises(TypeError, match=r"fn must be callable, got str 'square'"):
        ploop.map("square", [1, 2], workers=2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"workers": 0}, ValueError, r"workers=0 must be at least 1 \(use workers=1 to run"),
        ({"workers": -1}, ValueError, r"workers=-1 must be at least 1"),
        ({"workers": "x"}, ValueError, r"workers='x' is not a whole number or 'auto'"),
        ({"workers": True}, TypeError, r"workers=True must be an int or 'auto'"),
        ({"workers": 2.5}, TypeError, r"workers=2.5 must be an int or 'auto'"),
        ({"timeout": 0}, ValueError, r"timeout=0 must be a number of seconds above 0, or None"),
        ({"timeout": -1}, ValueError, r"timeout=-1 must be a number of seconds above 0"),
        ({"timeout": "5"}, ValueError, r"timeout='5' must be a number of seconds"),
        ({"chunksize": 0}, ValueError, r"chunksize=0 must be a whole number of at least 1"),
        ({"chunksize": True}, ValueError, r"chunksize=True must be a whole number"),
        ({"chunksize": 2.0}, ValueError, r"chunksize=2.0 must be a whole number"),
        ({"schedule": "nope"}, ValueError, r"schedule='nope' is not one of 'dynamic', 'static'"),
        ({"start_method": "nope"}, ValueError, r"start_method='nope' is not one of 'fork'"),
        ({"grace": -1}, ValueError, r"grace=-1 must be a number of seconds, at least 0"),
        ({"schedule": "lpt"}, ValueError, r"schedule='lpt' \(longest first\) needs cost="),
    ],
)
def test_a_bad_option_is_refused_naming_the_fix(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    # Refused before any process starts: by map, by Pool, and by a call that overrides it.
    with pytest.raises(error, match=message):
        ploop.map(faults.square, [1, 2], **options)
    with pytest.raises(error, match=message):
        ploop.Pool(**options)
    with ploop.Pool(2) as pool, pytest.raises(error, match=message):
        pool.map(faults.square, [1, 2], **options)
    assert threading.active_count() >= 1  # (the call returned; no_orphans checks processes)


# -- functions and pickling under spawn ------------------------------------------------------


def test_a_lambda_and_a_closure_work_under_spawn() -> None:
    offset = 10
    with ploop.Pool(2, start_method="spawn") as pool:
        assert pool.map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]  # cloudpickle ships it
        assert pool.map(lambda x: x + offset, [1, 2]) == [11, 12]


def test_an_unpicklable_closure_under_spawn_is_refused_naming_the_fix() -> None:
    lock = threading.Lock()

    def holds_a_lock(x: int) -> int:
        with lock:
            return x

    with pytest.raises(ploop.PloopError) as info:
        ploop.map(holds_a_lock, [1, 2], workers=2, start_method="spawn")
    message = str(info.value)
    assert "cannot be pickled to send it to the workers (start_method='spawn')" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert "Use start_method='fork'" in message
    assert isinstance(info.value.__cause__, TypeError)
    assert not isinstance(info.value, ploop.LoopError)  # refused before any task ran
    # Under fork the same function just works: nothing is pickled.
    assert ploop.map(holds_a_lock, [1, 2], workers=2, start_method="fork") == [1, 2]


def test_a_refused_function_leaves_nothing_open() -> None:
    lock = threading.Lock()

    def holds_a_lock(x: int) -> int:
        with lock:
            return x

    def refuse() -> None:
        with pytest.raises(ploop.PloopError):
            ploop.map(holds_a_lock, [1], workers=2, start_method="spawn")

    refuse()  # once first: the spawn machinery's own lasting file descriptors
    before = open_fds()
    for _ in range(3):
        refuse()
    assert open_fds() <= before
    assert not _worker.PARENT_FDS
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_function_the_workers_cannot_import_is_reported_naming_the_fix() -> None:
    # Picklable by reference here, but its module exists only in this process.
    module = types.ModuleType("ploop_only_in_the_main_process")
    exec("def double(x):\n    return 2 * x\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(ploop.PloopError) as info:
            ploop.map(module.double, range(8), workers=2, start_method="spawn")
    finally:
        del sys.modules[module.__name__]
    message = str(info.value)
    assert "could not be loaded in worker" in message
    assert "No module named 'ploop_only_in_the_main_process'" in message
    assert "Define it at module level in a module the workers can import" in message
    assert "start_method='fork'" in message


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_an_unpicklable_argument_fails_only_its_own_task(start_method: str) -> None:
    # A Pool's arguments travel pickled, under fork too (ploop.map's list need not: below).
    items: list[Any] = [1, 2, lambda: None, 4, threading.Lock(), 6]
    with ploop.Pool(2, start_method=start_method) as pool, pytest.raises(ploop.LoopError) as info:
        pool.map(faults.identity, items)
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [(2, "failed"), (4, "failed")]
    assert err.results == [1, 2, None, 4, None, 6]
    for failure in err.failures:
        message = str(failure.exception)
        assert f"the argument of task {failure.index} cannot be pickled" in message
        assert "Pass picklable arguments" in message
    assert "cannot pickle '_thread.lock' object" in str(err.failures[1].exception)


def _type_name(x: Any) -> str:
    return type(x).__name__


def _never_pickled() -> list[Any]:
    """Arguments that fail on the way to a worker that is sent them: pickling them raises
    (in the main process) or unpickling them raises (in the worker)."""
    return [
        1,
        lambda: None,
        threading.Lock(),
        faults.FailsWhenPickled("raise"),
        faults.FailsWhenUnpickled("raise"),
        "six",
    ]


NEVER_PICKLED_NAMES = ["int", "function", "lock", "FailsWhenPickled", "FailsWhenUnpickled", "str"]


@pytest.mark.parametrize("kind", [list, tuple])
def test_map_under_fork_hands_a_list_or_tuple_to_its_workers_unpickled(kind: type) -> None:
    # ploop.map forks its workers for the call: they hold the input already, so each chunk
    # carries positions only. An argument that could not travel reaches its task as it is.
    items = kind(_never_pickled())
    results = ploop.map(_type_name, items, workers=2, chunksize=1, start_method="fork")
    assert results == NEVER_PICKLED_NAMES


def test_map_under_fork_sends_other_inputs_pickled() -> None:
    # A generator is taken item by item, after the workers were forked: it travels pickled,
    # and an argument that cannot fails its own task with the fix in the message.
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(_type_name, iter(_never_pickled()), workers=2, start_method="fork")
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [
        (1, "failed"), (2, "failed"), (3, "failed"), (4, "failed"),
    ]  # fmt: skip
    assert err.results == ["int", None, None, None, None, "str"]
    for failure in err.failures[:3]:
        message = str(failure.exception)
        assert f"the argument of task {failure.index} cannot be pickled" in message
        assert "Pass picklable arguments" in message
    # (Unpickled in the worker, where it raised.)
    assert str(err.failures[3].exception) == "failing on purpose: 'unpickled'"


def test_a_crash_with_an_inherited_input_runs_its_chunk_again_on_a_new_worker() -> None:
    # The replacement worker is forked from the main process as the first were, and holds
    # the input too; the crashed task is named by its argument, read in the main process.
    items: list[Any] = [("ok", i) for i in range(40)]
    items[5] = ("os_exit", "crash here")
    with ploop.Pool(2, chunksize=8) as pool:
        pool._one_shot = True  # as ploop.map, with the run record at hand
        with pytest.raises(ploop.LoopError) as info:
            pool.map(faults.fail_on, items)
        record = pool.last_run
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [(5, "crashed")]
    assert err.failures[0].argument == repr(("os_exit", "crash here"))
    assert err.results == [None if i == 5 else i for i in range(40)]
    assert record is not None
    assert sum(len(info.pids) for info in record.worker_info.values()) >= 3


def _consume(record: dict[str, Any]) -> Any:
    """Take the record's text out of it (the task changes its item), and return the number,
    or a result that cannot be unpickled in the main process."""
    text = record.pop("text")
    return int(text) if text.isdigit() else faults.FailsToUnpickle()


def test_tasks_run_again_after_a_result_failed_to_unpickle_get_their_items_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One result that cannot be unpickled spoils its chunk's, and the chunk's tasks run again
    # one by one. A worker holding the input may have run them and changed their items: they
    # go pickled, from the main process's items, and not from that worker's copy (where the
    # text was gone: every task of the chunk failed with KeyError, or passed wrongly).
    sent: list[Chunk] = []
    queue = _transport.Channel.queue

    def spy(channel: _transport.Channel, message: Any) -> None:
        if isinstance(message, Chunk):
            sent.append(message)
        queue(channel, message)

    monkeypatch.setattr(_transport.Channel, "queue", spy)
    records = [{"line": i, "text": str(i)} for i in range(200)]
    records[2]["text"] = "oops"
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(_consume, records, workers=2, chunksize=4)
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [(2, "failed")]
    assert "cannot be unpickled" in str(err.failures[0].exception)
    assert err.results == [None if i == 2 else i for i in range(200)]
    assert records[2] == {"line": 2, "text": "oops"}  # (the caller's items are untouched)
    again = [c for c in sent if c.indices in ((0,), (1,), (2,), (3,))]
    assert sorted(c.indices[0] for c in again) == [0, 1, 2, 3]
    assert all(c.args is not None for c in again)
    assert all(c.args is None for c in sent if c not in again)


def test_map_under_fork_longest_first_hands_its_items_over_unpickled() -> None:
    items = _never_pickled()
    results = ploop.map(
        _type_name, items, workers=2, schedule="lpt", cost=lambda x: len(repr(x)),
        start_method="fork",
    )  # fmt: skip
    assert results == NEVER_PICKLED_NAMES


def test_an_unpicklable_result_fails_only_its_own_task() -> None:
    def result(x: int) -> Any:
        return threading.Lock() if x == 1 else x

    with pytest.raises(ploop.LoopError) as info:
        ploop.map(result, [0, 1, 2], workers=2, chunksize=3)
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [(1, "failed")]
    assert "cannot pickle '_thread.lock' object" in str(err.failures[0].exception)
    assert err.results == [0, None, 2]


# -- an input that fails ---------------------------------------------------------------------


@pytest.mark.parametrize("fails_after", [0, 1, 5000])
def test_an_input_that_raises_propagates_and_leaves_nothing_behind(fails_after: int) -> None:
    def items() -> Iterator[int]:
        yield from range(fails_after)
        raise LookupError("the input broke")

    ploop.map(faults.square, range(4), workers=2)  # the lasting descriptors of a first run
    before = open_fds()
    with pytest.raises(LookupError, match="the input broke"):
        ploop.map(faults.square, items(), workers=2)
    # Ctrl-C and SIGTERM are the caller's again, and the run closed what it opened.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert open_fds() <= before
    assert not _worker.PARENT_FDS


# -- layering --------------------------------------------------------------------------------


def test_the_engine_and_the_loop_api_never_import_pytest() -> None:
    code = (
        "import sys, pytest_ploop._engine._pool, pytest_ploop._engine._worker, pytest_ploop._loop;"
        "import pytest_ploop as ploop;"
        "assert ploop.map(abs, [-1, -2], workers=2) == [1, 2];"
        "assert 'pytest' not in sys.modules, sorted(m for m in sys.modules if 'pytest' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
