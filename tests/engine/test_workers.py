"""Worker processes as the main process keeps them: starting, failing to start, replacing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pytest_ploop as ploop
from pytest_ploop._engine import _worker
from pytest_ploop._engine._messages import ChunkDone
from pytest_ploop._engine._pool import TICK_S, Run, RunOptions
from pytest_ploop._engine._workers import Workers, signal_name
from tests import faults
from tests.processes import gone

ROOT = Path(__file__).resolve().parents[2]

# Run in a process of its own: it kills multiprocessing's resource tracker, which this
# process needs for its own spawn tests.
FAILED_START = textwrap.dedent(
    """
    import gc, os, signal, sys, warnings
    sys.path.insert(0, {root!r})
    from multiprocessing import resource_tracker
    import pytest_ploop as ploop
    from pytest_ploop._engine import _worker
    from tests import faults

    def fds():
        gc.collect()
        return set(os.listdir("/proc/self/fd"))

    if __name__ == "__main__":
        warnings.simplefilter("error")  # as the test suite runs: a warning is an error
        assert ploop.map(faults.square, [1, 2], workers=2, start_method="spawn") == [1, 4]
        before = fds()
        # The next spawn finds its helper dead and warns: the worker's start fails.
        tracker = resource_tracker._resource_tracker._pid
        os.kill(tracker, signal.SIGKILL)
        os.waitpid(tracker, 0)  # dead, its end of the pipe closed: the next probe fails
        try:
            ploop.map(faults.square, [1, 2], workers=2, start_method="spawn")
        except UserWarning as exc:
            print("start failed:", exc)
        else:
            raise AssertionError("the worker's start did not fail")
        assert not _worker.PARENT_FDS, f"stale descriptors: {{_worker.PARENT_FDS}}"
        assert fds() <= before, fds() - before
        for _ in range(10):  # forked workers close PARENT_FDS: it must hold nothing stale
            assert ploop.map(faults.square, range(40), workers=3, chunksize=1) == [
                x * x for x in range(40)
            ]
        print("ok")
    """
)


def test_a_worker_that_fails_to_start_leaves_nothing_stale(tmp_path: Path) -> None:
    script = tmp_path / "failed_start.py"
    script.write_text(FAILED_START.format(root=str(ROOT)))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "start failed: resource_tracker: process died unexpectedly, relaunching.  Some "
        "resources might leak.",
        "ok",
    ]


def test_a_crashed_worker_is_replaced_in_its_slot_with_its_id() -> None:
    with ploop.Pool(2, chunksize=1) as pool:
        with pytest.raises(ploop.LoopError) as info:
            pool.map(faults.fail_on, [("os_exit", 0), ("ok", 1), ("os_exit", 2), ("ok", 3)])
        record = pool.last_run
    assert record is not None
    assert [f.index for f in info.value.failures] == [0, 2]
    assert set(record.worker_info) <= {"w0", "w1"}
    pids = [pid for info in record.worker_info.values() for pid in info.pids]
    assert len(pids) == len(set(pids)) >= 3  # two crashed, at least one replacement
    assert sum(info.restarts for info in record.worker_info.values()) >= 2


def test_a_run_starts_one_worker_per_turn_of_its_loop(tmp_path: Path) -> None:
    """A fork takes milliseconds: a run that forked every worker before it read a result left
    the first ones idle. It starts one per turn of its event loop, and the first tasks still
    go one to each worker."""
    release = str(tmp_path / "release")
    items = [[("wait", release), ("return", i)] for i in range(6)]
    workers = Workers("fork")
    run = Run(workers, faults.steps, items, RunOptions(workers=3, chunksize=1))
    try:
        live = [len(workers.live())]
        for _ in range(2):
            run.poll()  # returns at once while workers are still to start
            live.append(len(workers.live()))
        assert live == [1, 2, 3]
        assert [list(w.inflight[0].indices) for w in workers.live()] == [[0], [1], [2]]
        faults.touch(release)
        run.run_to_end()
    finally:
        run.finish()
        workers.close()
    assert run.outcomes.counts["passed"] == 6


def _with_next(arg: tuple[int, str], next_arg: tuple[int, str] | None) -> tuple[int, int | None]:
    """A lookahead task: waits until its path exists, returns its number and the next's."""
    faults.wait_for_path(arg[1])
    return arg[0], None if next_arg is None else next_arg[0]


setattr(_with_next, _worker.LOOKAHEAD, True)


def _held(workers: Workers) -> list[list[int]]:
    return [[i for c in w.inflight for i in c.indices] for w in workers.live()]


def test_a_lookahead_run_sets_first_chunks_aside_for_workers_still_to_start(
    tmp_path: Path,
) -> None:
    """A lookahead task (the plugin's) needs the next chunk before it starts. The first
    worker used to wait, its first task unstarted, until the last worker was started (tens of
    milliseconds with 8 workers). Each worker's first chunk is set aside as the first worker
    starts, so that it gets its second at once; the tasks go out in the same order."""
    release = str(tmp_path / "release")
    items = [(i, release) for i in range(8)]
    workers = Workers("fork")
    run = Run(workers, _with_next, items, RunOptions(workers=3, chunksize=1))
    try:
        assert _held(workers) == [[0, 3]]  # 1 and 2 wait for their workers
        run.poll()
        assert _held(workers) == [[0, 3], [1, 4]]
        run.poll()
        assert _held(workers) == [[0, 3, 6], [1, 4, 7], [2, 5]]
        faults.touch(release)
        run.run_to_end()
    finally:
        run.finish()
        workers.close()
    assert run.outcomes.counts["passed"] == 8
    results = sorted(v for ready in run.outcomes.ready for v in ready.values)
    # Each task saw what followed it on its worker, and the last of each saw the end.
    assert results == [(0, 3), (1, 4), (2, 5), (3, 6), (4, 7), (5, None), (6, None), (7, None)]


def test_tasks_set_aside_for_workers_never_started_are_not_run(tmp_path: Path) -> None:
    release = str(tmp_path / "release")
    items = [(i, release) for i in range(6)]
    workers = Workers("fork")
    run = Run(workers, _with_next, items, RunOptions(workers=3, chunksize=1, grace=60))
    try:
        assert _held(workers) == [[0, 3]]
        run.stop("stopped by the test")
        faults.touch(release)
        run.run_to_end()
    finally:
        run.finish()
        workers.close()
    assert len(workers.pids) == 1  # the other two never started
    failures = run.outcomes.failures
    assert failures[1].kind == failures[2].kind == "not_run"  # their chunks were set aside
    assert "stopped by the test" in str(failures[1].exception)
    # Every task taken from the input has one outcome (0 and 3 passed or were cancelled in
    # their worker); 4 and 5 were never taken.
    counts = run.outcomes.counts
    assert counts["passed"] + counts["not_run"] == run.consumed == 4
    assert run.not_consumed == 2


def test_a_run_stopped_before_all_its_workers_started_waits_for_events(tmp_path: Path) -> None:
    """poll() comes back at once while workers are still to start; a run that stopped will
    start none, and its poll() must wait for events again, not spin until the drain ends."""
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    items = [[("touch", started), ("wait", release), ("return", i)] for i in range(3)]
    workers = Workers("fork")
    run = Run(workers, faults.steps, items, RunOptions(workers=3, chunksize=1, grace=60))
    try:
        assert len(workers.live()) == 1  # the others are started on later turns
        faults.wait_for_path(started)  # the task runs: nothing will arrive until it ends
        run.stop("stopped by the test")
        begin = time.monotonic()
        run.poll()
        assert time.monotonic() - begin >= TICK_S / 2  # waited for an event or the tick
        assert len(workers.live()) == 1
        faults.touch(release)
        run.run_to_end()
    finally:
        run.finish()
        workers.close()
    assert run.outcomes.counts["passed"] == 1
    assert run.consumed == 1  # the stop kept the rest in the input


@pytest.mark.parametrize(
    ("exitcode", "name"), [(None, None), (0, None), (3, None), (-11, "SIGSEGV"), (-9, "SIGKILL")]
)
def test_signal_name_reads_a_process_exit_code(exitcode: int | None, name: str | None) -> None:
    assert signal_name(exitcode) == name


def test_tasks_to_run_again_go_out_while_a_stream_holds_back() -> None:
    """A stream (``imap``) takes no more input while its consumer is ``max_ahead`` tasks
    behind. Tasks of a crashed chunk, taken from the input already, were held back too: an
    ordered consumer waiting for the first of them never advanced, and the call hung (here:
    ``imap`` with ``chunksize=50_000`` when a task of the first chunk crashed)."""
    items: list[list[tuple[Any, ...]]] = [[("return", i)] for i in range(5)]
    items[1] = [("exit", 3)]
    workers = Workers("fork")
    run = Run(workers, faults.steps, items, RunOptions(workers=2, chunksize=5, max_ahead=5))
    try:
        # The consumer waits for task 0, which is to run again: run.delivered stays 0.
        deadline = time.monotonic() + 30
        while not run.done and time.monotonic() < deadline:
            run.poll()
        assert run.done, f"held back for 30 s: {run.outcomes.counts}"
    finally:
        run.finish()
        workers.close()
    assert run.outcomes.counts["passed"] == 4
    assert [(f.index, f.kind) for f in run.outcomes.failures.values()] == [(1, "crashed")]


def test_a_chunk_of_tiny_tasks_sends_its_cpu_time_as_one_figure(
    chunks_done: list[ChunkDone],
) -> None:
    """A batch measured its CPU time once and sent one share per task: 8 bytes a task, more
    than the results of ``x * x`` take. It sends the one figure; the main process shares it
    out, and the record still has each task's share."""
    seen = chunks_done
    with ploop.Pool(workers=2) as pool:
        assert pool.map(faults.square, range(50_000)) == [x * x for x in range(50_000)]
        record = pool.last_run
    batches = [m for m in seen if m.batch_end is not None]
    assert batches, "no chunk ran as a batch"
    assert all(len(m.cpu) == 1 for m in batches)
    cpu = record.tasks.cpu_s
    assert len(cpu) == 50_000
    assert sum(cpu) == pytest.approx(sum(sum(m.cpu) for m in seen))


def test_workers_are_first_sampled_one_tick_into_the_run() -> None:
    """Sampling at the start cost 0.7 ms between the forks of the first workers, for a CPU
    reading that only starts its interval: the first sample comes one tick in, and then one
    a tick as before."""
    with ploop.Pool(workers=2) as pool:
        pool.map(faults.sleep_then, [(0.05, i) for i in range(10)])
        record = pool.last_run
    assert record.samples, "a run of 0.25 s was never sampled"
    assert min(s.t for s in record.samples) >= record.started + TICK_S


def _child_holding_memory(paths: tuple[str, str]) -> int:
    """Start a process that fills 100 MiB, says so, and waits for the release."""
    ready, release = paths
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests import faults; "
        f"data = b'x' * (100 << 20); faults.touch({ready!r}); faults.wait_for_path({release!r})"
    )
    return subprocess.run([sys.executable, "-c", code], check=True).returncode


def _poll_until(run: Run, ready: Callable[[], bool]) -> None:
    """Drive ``run`` until ``ready()``: a sample it takes, an event it sees (30 s at most)."""
    deadline = time.monotonic() + 30
    while not ready():
        assert time.monotonic() < deadline, run.record.samples
        run.poll()


def test_a_workers_samples_include_its_child_processes(tmp_path: Path) -> None:
    """A worker's samples counted the worker alone: a test's server or build that used
    memory and CPU in a child process was invisible (``children`` was always 0), and so was
    it to ``--ploop-workers=auto``'s memory fit."""
    ready, release = str(tmp_path / "ready"), str(tmp_path / "release")
    workers = Workers("fork")
    run = Run(workers, _child_holding_memory, [(ready, release)], RunOptions(workers=2))
    try:
        _poll_until(run, lambda: any(s.rss > 100 << 20 for s in run.record.samples))
        assert next(s.children for s in run.record.samples if s.rss > 100 << 20) == 1
        faults.touch(release)
        run.run_to_end()
    finally:
        run.finish()
        workers.close()
    assert run.outcomes.counts["passed"] == 1


def _multiprocessing_state(_: object) -> tuple[object, ...]:
    import multiprocessing as mp

    me = mp.current_process()
    state = (me.name, me.daemon, me._identity, mp.parent_process(), mp.Process().name)  # type: ignore[attr-defined]
    mp.set_start_method("spawn", force=False)  # raised "context has already been set"
    return (*state, mp.get_start_method())


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_worker_is_a_main_process_to_multiprocessing(
    start_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started as a multiprocessing child, a worker looked like one to the tasks: its own
    name, a parent process, children named ``Process-1:1``, a start method already set,
    which code that checks where it runs (freezegun, a test's ``set_start_method``) noticed.
    A task sees what it would see in the main process (where no start method is set)."""
    import multiprocessing.context

    # This process's start method as a program's that never set one (earlier tests may have).
    monkeypatch.setattr(multiprocessing.context._default_context, "_actual_context", None)
    [state] = ploop.map(_multiprocessing_state, [0], workers=2, start_method=start_method)
    assert state == ("MainProcess", False, (), None, "Process-1", "spawn")


def _start_a_server_then_wait(path: str) -> None:
    """Start a process in a session of its own (out of the worker's process group, as a
    test's server may be), name its pid in a file ``path.PID``, then make ``path``, and wait
    for ever."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    faults.touch(f"{path}.{child.pid}")
    faults.touch(path)
    threading.Event().wait()


def test_a_crashed_workers_process_in_a_session_of_its_own_is_ended(tmp_path: Path) -> None:
    """The kill of a dead worker's process group missed a process it started with
    ``start_new_session=True``: it outlived the run. The processes the samples saw below the
    worker are ended too."""
    path = str(tmp_path / "started")
    workers = Workers("fork")
    run = Run(workers, _start_a_server_then_wait, [path], RunOptions(workers=2))
    try:
        # (``path`` comes after the pid's file: the samples may see the child before.)
        _poll_until(
            run, lambda: os.path.exists(path) and any(s.children for s in run.record.samples)
        )
        [child] = [int(p.name.rsplit(".", 1)[1]) for p in tmp_path.glob("started.*")]
        os.kill(workers.live()[0].pid, signal.SIGKILL)
        run.run_to_end()
    finally:
        run.finish()
        workers.close()
    assert run.outcomes.counts["crashed"] == 1
    assert gone([child])
