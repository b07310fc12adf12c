"""The loop API where a user's program does more than one plain call: threads sharing a pool,
streams left suspended or finished out of order, a caller's own timer, odd exceptions and
inputs. Each test names the misbehaviour it guards against."""

from __future__ import annotations

import operator
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import pytest_ploop as ploop
from tests import faults


def test_a_call_from_another_thread_is_refused_while_one_holds_the_workers() -> None:
    """Two threads' calls both passed the pool's "one call at a time" check while the first
    was still taking its input: they drove one set of workers, and one returned the other's
    results, or None in their place, without an error."""
    entered, release = threading.Event(), threading.Event()

    def slow_input() -> Any:
        entered.set()
        assert release.wait(30)
        yield from range(20)

    out: dict[str, Any] = {}
    with ploop.Pool(workers=2) as pool:

        def first() -> None:
            out["first"] = pool.map(faults.square, slow_input())

        thread = threading.Thread(target=first)
        thread.start()
        try:
            assert entered.wait(30)
            with pytest.raises(ploop.PloopError, match="one call at a time"):
                pool.map(faults.square, range(100, 120))
        finally:
            release.set()
            thread.join(30)
        assert out["first"] == [x * x for x in range(20)]
        assert pool.map(faults.square, range(3)) == [0, 1, 4]  # the pool is free again


def test_a_suspended_stream_leaves_ctrl_c_and_sigterm_to_the_program() -> None:
    """The run's handlers stayed installed while a stream was suspended between results:
    Ctrl-C and SIGTERM sent to the program then were swallowed (it went on, and exited 0)."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with ploop.Pool(workers=2) as pool:
        it = pool.imap(faults.square, range(1000))
        assert next(it) == 0
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # the program's own handler raises it here
        assert list(it) == [x * x for x in range(1, 1000)]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_two_streams_may_end_in_either_order() -> None:
    """The second stream to start, ending last, put back the first one's closed wake-up
    pipe as the process's, and failed with "Bad file descriptor" after its tasks had run."""
    before = signal.getsignal(signal.SIGINT)
    with ploop.Pool(workers=2) as a, ploop.Pool(workers=2) as b:
        ia, ib = a.imap(faults.square, range(10)), b.imap(faults.square, range(10))
        assert (next(ia), next(ib)) == (0, 0)
        assert list(ia) == list(ib) == [x * x for x in range(1, 10)]
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.set_wakeup_fd(-1) == -1  # no run's pipe left as the wake-up fd


def _reduce_that_raises(total: int, value: int) -> int:
    if value > 10:
        raise OverflowError("too big")
    return total + value


def test_a_reduce_that_raises_leaves_the_pool_free() -> None:
    """map_reduce's stream stayed suspended, kept alive by the exception's traceback: the
    pool's next call was refused as "still running another call", and Ctrl-C did nothing."""
    before = signal.getsignal(signal.SIGINT)
    with ploop.Pool(workers=2) as pool:
        with pytest.raises(OverflowError) as caught:
            pool.map_reduce(faults.square, range(100_000), _reduce_that_raises, initial=0)
        assert signal.getsignal(signal.SIGINT) is before
        assert pool.map(faults.square, range(3)) == [0, 1, 4]
        assert pool.map_reduce(faults.square, range(4), operator.add) == 14
        del caught


def test_workers_started_by_a_thread_outlive_it() -> None:
    """The kernel's parent-death signal follows the thread that forked: the workers died
    (SIGKILL) when the thread that first used the pool ended, and their tasks were blamed."""
    with ploop.Pool(workers=2) as pool:
        thread = threading.Thread(target=pool.map, args=(faults.square, range(4)))
        thread.start()
        thread.join(30)
        started = pool.last_run
        assert started is not None
        pids = {w: info.pids for w, info in started.worker_info.items()}
        assert pool.map(faults.sleep_then, [(0.05, i) for i in range(4)]) == list(range(4))
        record = pool.last_run
        assert record is not None
        assert {w: info.pids for w, info in record.worker_info.items()} == pids
        assert all(info.restarts == 0 for info in record.worker_info.values())


def _pid(_: object) -> int:
    return os.getpid()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_auto_on_one_cpu_runs_a_worker_process() -> None:
    """With one CPU usable, workers="auto" ran the tasks in the calling process, as
    workers=1 does on purpose: a task that crashed killed the caller, and timeouts off the
    main thread were not enforced."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        assert ploop.available_cpus() == 1
        assert set(ploop.map(_pid, range(3), workers="auto")) != {os.getpid()}
        assert ploop.map(_pid, range(3), workers=1) == [os.getpid()] * 3
    finally:
        os.sched_setaffinity(0, cpus)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_workers_1_with_a_timeout_keeps_the_callers_timer() -> None:
    """The in-process run set ITIMER_REAL to 0 after each task: a watchdog the caller had
    set (pytest-timeout's signal method uses one) never fired."""
    fired: list[int] = []

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        fired.append(signum)

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        assert ploop.map(abs, [-1, -2, -3], workers=1, timeout=10) == [1, 2, 3]
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left <= 30.0
        assert signal.getsignal(signal.SIGALRM) is on_alarm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not fired


def _broken_input() -> Any:
    yield 1
    yield 2
    raise RuntimeError("input broke")


def test_an_input_that_raises_at_once_still_leaves_its_record_and_report(
    tmp_path: Path,
) -> None:
    """On a pool whose workers were running, an input that raised while the call took its
    first items left last_run at the previous call's record, and wrote no report."""
    report = tmp_path / "run.json"
    with ploop.Pool(workers=2) as pool:
        pool.map(faults.square, range(10))
        earlier = pool.last_run
        with pytest.raises(RuntimeError, match="input broke"):
            pool.map(faults.square, _broken_input(), report=report)
        assert pool.last_run is not earlier
        assert report.exists()
        assert pool.map(faults.square, range(3)) == [0, 1, 4]


class StrRaises(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("str() broke")


def _raise_str_raises(x: int) -> int:
    if x == 2:
        raise StrRaises()
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_an_exception_whose_str_raises_is_reported_with_the_others(workers: int) -> None:
    """Formatting the LoopError's message called str() on it: the call raised that
    RuntimeError instead, and every result was lost."""
    with pytest.raises(ploop.LoopError) as caught:
        ploop.map(_raise_str_raises, range(4), workers=workers)
    assert "task 2 (failed), argument 2: StrRaises: <str() of the exception failed>" in str(
        caught.value
    )
    assert caught.value.results == [0, 1, None, 3]


def test_a_calls_start_method_is_for_that_call_only() -> None:
    """A call's start_method="spawn" stayed the pool's: the next call, which gave none,
    ran under spawn too, and a closure (fine under fork) failed to load."""
    lock = threading.Lock()

    def closure(x: int) -> int:
        with lock:
            return x + 1

    with ploop.Pool(workers=2) as pool:
        assert pool.map(faults.square, range(3), start_method="spawn") == [0, 1, 4]
        assert pool.last_run is not None and pool.last_run.start_method == "spawn"
        assert pool.map(closure, range(3)) == [1, 2, 3]
        assert pool.last_run.start_method == "fork"


def test_a_stream_left_open_ends_when_its_pool_closes() -> None:
    """Iterating a stream after its pool had closed forked a worker into the closed pool and
    failed with "KeyError: ... is already registered"."""
    with ploop.Pool(workers=2) as pool:
        it = pool.imap(faults.square, range(100_000))
        assert next(it) == 0
    with pytest.raises(ploop.LoopError) as caught:
        for _ in it:
            pass
    kinds = {f.kind for f in caught.value.failures}
    assert kinds == {"not_run"}
    assert "the pool was closed" in caught.value.failures[0].traceback
    assert pool.last_run is not None and pool.last_run.counts["not_run"] > 0


def test_the_progress_line_ends_with_the_final_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The count was updated on the run's tick (every 0.1 s) only: a quick run ended on
    "ploop: 0 tasks"."""
    ploop.map(faults.square, range(1000), workers=2, progress=True)
    assert "1000/1000" in capsys.readouterr().err.strip().splitlines()[-1]


def _fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError("five")
    time.sleep(0.005)
    return x


def test_fail_fast_results_cover_every_input_position() -> None:
    """err.results of a stopped run over a list stopped at the last item taken: shorter than
    the input, so indexing it by input position failed."""
    items = list(range(1000))
    with pytest.raises(ploop.LoopError) as caught:
        ploop.map(_fail_on_five, items, workers=2, fail_fast=True)
    err = caught.value
    assert len(err.results) == len(items)
    assert err.results[:5] == [0, 1, 2, 3, 4]
    assert err.results[-1] is None


class LenRaises:
    """An iterable whose ``len()`` raises something other than TypeError."""

    def __len__(self) -> int:
        raise NotImplementedError("no length")

    def __iter__(self) -> Any:
        return iter(range(5))


@pytest.mark.parametrize(
    "items", [range(10**20), LenRaises()], ids=["range-too-long-for-len", "len-raises"]
)
def test_an_input_whose_len_fails_is_iterated(items: Any) -> None:
    """len(range(10**20)) overflows, and a __len__ may raise: the call failed with that
    error, where multiprocessing iterates the input."""
    with ploop.Pool(workers=2) as pool:
        it = pool.imap(faults.square, items)
        assert [next(it) for _ in range(3)] == [0, 1, 4]
        it.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"cost": 5, "schedule": "lpt"}, "cost=5 must be a function"),
        ({"timeout": True}, "timeout=True must be a number of seconds"),
    ],
)
def test_odd_option_values_are_refused_with_the_fix(option: dict[str, Any], message: str) -> None:
    """cost=5 failed later with "'int' object is not callable"; timeout=True meant 1 s."""
    with pytest.raises((TypeError, ValueError), match=message):
        ploop.map(faults.square, range(3), workers=2, **option)


def _input_that_breaks_at(n: int) -> Any:
    yield from range(n)
    raise RuntimeError(f"input broke at {n}")


@pytest.mark.parametrize("ordered", [True, False])
def test_a_stream_yields_what_it_took_before_its_input_raised(ordered: bool) -> None:
    """The results of the items taken before the input raised were dropped (5,000 items
    taken, 0 results); multiprocessing's imap yields them, then raises the input's error."""
    got: list[int] = []
    with ploop.Pool(workers=2) as pool:
        stream = pool.imap if ordered else pool.imap_unordered
        with pytest.raises(RuntimeError, match="input broke at 5000"):
            for value in stream(faults.square, _input_that_breaks_at(5000)):
                got.append(value)
        assert pool.last_run is not None and pool.last_run.counts["passed"] == 5000
    assert (got if ordered else sorted(got)) == [x * x for x in range(5000)]


def test_map_accounts_for_every_item_taken_before_its_input_raised() -> None:
    """The items of the chunk being taken when the input raised had no outcome at all."""
    with ploop.Pool(workers=2) as pool:
        with pytest.raises(RuntimeError, match="input broke at 5000"):
            pool.map(faults.square, _input_that_breaks_at(5000))
        record = pool.last_run
        assert record is not None
        assert sum(record.counts.values()) == 5000
