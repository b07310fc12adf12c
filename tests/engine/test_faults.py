"""The fault matrix: WHERE a task fails by HOW it fails, with real worker processes.

Each case runs eight tasks on two workers, two tasks a chunk; task 1 is the faulty one and
shares its chunk with task 0 (which has run, or not, when task 1 fails), so every case also
checks that a chunk's other tasks are run again and pass. Task 1's chunk always goes to worker
``w0`` first, so when it kills its worker, slot ``w0`` must get a replacement worker.

WHERE, in the worker: ``run`` (the function), ``argument`` (unpickling the argument),
``result`` (pickling the result); HOW: raise, ``sys.exit``, ``os._exit``, SIGSEGV, a hang
ended by ``timeout=``, SIGKILL. In the main process (only raising is meaningful there: the
main process must survive): pickling the argument, unpickling the result; and exceptions that
cannot cross (unpicklable, or pickled but not unpicklable).
"""

from __future__ import annotations

from typing import Any

import pytest

import pytest_ploop as ploop
from tests import faults

START_METHODS = ["fork", "spawn"]
HOWS = ["raise", "exit", "os_exit", "segfault", "hang", "kill"]
IN_WORKER = ["run", "argument", "result"]
IN_MAIN = ["argument_pickle", "result_unpickle", "exception", "exception_pickle"]
KIND = {
    "raise": "failed",
    "exit": "failed",
    "os_exit": "crashed",
    "segfault": "crashed",
    "kill": "crashed",
    "hang": "timed_out",
}
N = 8
FAULTY = 1
TIMEOUT = 0.5  # only for the hang cases: other tasks take microseconds


def faulty_item(where: str, how: str) -> tuple[str, str, Any]:
    """The argument of task 1 for a case (see ``faults.run_case``)."""
    if where == "argument":
        return ("ok", "", faults.FailsWhenUnpickled(how))
    if where == "argument_pickle":
        return ("ok", "", faults.Unpicklable())
    return (where, how, "value")


def run_matrix_case(where: str, how: str, start_method: str) -> ploop.LoopError:
    """Run the eight tasks; return the LoopError after the checks every case shares."""
    items = [("ok", "", i * 10) for i in range(N)]
    items[FAULTY] = faulty_item(where, how)
    timeout = TIMEOUT if how == "hang" else None
    with ploop.Pool(2, start_method=start_method, chunksize=2, timeout=timeout) as pool:
        with pytest.raises(ploop.LoopError) as info:
            pool.map(faults.run_case, items)
        record = pool.last_run
    err = info.value
    kind = KIND[how] if where in IN_WORKER else "failed"
    # Exactly one failure, the faulty task's, of the right kind; every other task passed and
    # its result is kept at its position.
    assert [(f.index, f.kind) for f in err.failures] == [(FAULTY, kind)]
    assert err.results == [None if i == FAULTY else i * 10 for i in range(N)]
    assert list(err.exceptions) == [err.failures[0].exception]
    assert err.total == N
    assert str(err).startswith(f"1 of {N} tasks did not pass (1 {kind.replace('_', ' ')})")
    assert record is not None
    assert record.counts == {"passed": N - 1, kind: 1}
    assert sorted(r.index for r in record.tasks if r.outcome == "passed") == [
        i for i in range(N) if i != FAULTY
    ]
    failure = err.failures[0]
    assert failure.traceback
    assert failure.argument == repr(items[FAULTY])  # short: the bounded repr is all of it
    if kind in ("crashed", "timed_out"):
        # The faulty chunk went to w0 first and killed it: the run went on with a new one.
        assert len(record.worker_info["w0"].pids) >= 2, record.worker_info
    return err


def remote_text(exc: BaseException) -> str:
    """The worker's traceback text attached to ``exc``."""
    cause = exc.__cause__
    assert isinstance(cause, ploop.RemoteTraceback), repr(cause)
    return cause.text


# -- in the worker: where x how --------------------------------------------------------------


def check_exception(where: str, how: str, exc: BaseException, index: int) -> None:
    """``exc`` is what a task that failed at ``where`` by ``how`` must be reported as."""
    if how == "raise":
        # The original exception, with the worker's traceback naming the failing function.
        assert type(exc) is ValueError
        assert str(exc).startswith("failing on purpose")
        text = remote_text(exc)
        assert "in fail_on" in text and "ValueError: failing on purpose" in text
        if where == "run":
            assert "in run_case" in text
        if where == "result":
            assert "in __reduce__" in text
    elif how == "exit":
        # SystemExit cannot sit in an ExceptionGroup: it stands in a RemoteException, and the
        # SystemExit itself (with its remote traceback) is the cause.
        assert isinstance(exc, ploop.RemoteException)
        assert (exc.type_name, exc.message) == ("SystemExit", "3")
        assert isinstance(exc.__cause__, SystemExit) and exc.__cause__.code == 3
        assert "sys.exit(3)" in remote_text(exc.__cause__)
    elif how == "hang":
        assert isinstance(exc, ploop.TaskTimeout)
        assert (exc.index, exc.timeout) == (index, TIMEOUT)
        assert f"task {index} timed out after {TIMEOUT:g}s" in str(exc)
    else:
        assert isinstance(exc, ploop.WorkerCrashed)
        assert exc.index == index
        expected = {"os_exit": (7, None), "segfault": (None, "SIGSEGV"), "kill": (None, "SIGKILL")}
        assert (exc.exitcode, exc.signal) == expected[how]
        how_it_died = "exited with code 7" if how == "os_exit" else f"killed by {exc.signal}"
        assert f"task {index}: the worker running it died ({how_it_died})" in str(exc)
        if how == "segfault":
            # faulthandler's dump from the dying worker names the function.
            assert "Segmentation fault" in exc.detail and "fail_on" in exc.detail


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("where", IN_WORKER)
def test_a_fault_in_the_worker_fails_only_its_task(where: str, how: str) -> None:
    err = run_matrix_case(where, how, "fork")
    check_exception(where, how, err.failures[0].exception, FAULTY)
    assert err.failures[0].worker in ("w0", "w1")


@pytest.mark.parametrize("where", IN_WORKER)
def test_under_spawn_each_fault_in_the_worker_fails_only_its_task(where: str) -> None:
    """The same cases with spawned workers, every HOW in one run (a spawned worker takes a
    good part of a second to start): each faulty task between two that pass."""
    items: list[Any] = [("ok", "", 0)]
    faulty: dict[int, str] = {}
    for how in HOWS:
        faulty[len(items)] = how
        items += [faulty_item(where, how), ("ok", "", len(items) + 1)]
    with ploop.Pool(2, start_method="spawn", chunksize=1, timeout=TIMEOUT) as pool:
        with pytest.raises(ploop.LoopError) as info:
            pool.map(faults.run_case, items)
        record = pool.last_run
    err = info.value
    assert {f.index: f.kind for f in err.failures} == {i: KIND[h] for i, h in faulty.items()}
    for failure in err.failures:
        check_exception(where, faulty[failure.index], failure.exception, failure.index)
    assert err.results == [None if i in faulty else i for i in range(len(items))]
    assert record is not None and record.start_method == "spawn"
    # Four of the six faults end their worker, four processes: the run went on with new ones.
    # (How many more started depends on timing: a replacement may find no task left.)
    assert sum(len(info.pids) for info in record.worker_info.values()) >= 4


# -- in the main process, and exceptions that cannot cross -----------------------------------


@pytest.mark.parametrize("start_method", START_METHODS)
def test_an_argument_that_cannot_be_pickled_fails_its_task_naming_it(start_method: str) -> None:
    err = run_matrix_case("argument_pickle", "raise", start_method)
    failure = err.failures[0]
    exc = failure.exception
    assert type(exc) is ploop.PloopError
    assert f"the argument of task {FAULTY} cannot be pickled" in str(exc)
    assert "Unpicklable refuses to be pickled" in str(exc)
    assert isinstance(exc.__cause__, TypeError)
    assert failure.worker == ""  # it never reached a worker


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_result_that_cannot_be_unpickled_fails_only_its_task(start_method: str) -> None:
    # The chunk's results travel as one list: the others in its chunk are run again alone.
    err = run_matrix_case("result_unpickle", "raise", start_method)
    exc = err.failures[0].exception
    assert type(exc) is RuntimeError and str(exc) == "cannot be unpickled"
    assert "in _explode" in remote_text(exc)


@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize(
    ("where", "type_name", "message"),
    [
        ("exception", "tests.faults.BadInitError", "custom"),  # pickles, cannot be unpickled
        ("exception_pickle", "tests.faults.HoldsLockError", "holds a lock"),  # cannot pickle
    ],
)
def test_an_exception_that_cannot_cross_keeps_its_type_and_text(
    where: str, type_name: str, message: str, start_method: str
) -> None:
    err = run_matrix_case(where, "raise", start_method)
    exc = err.failures[0].exception
    assert isinstance(exc, ploop.RemoteException)
    assert (exc.type_name, exc.message) == (type_name, message)
    text = remote_text(exc)
    assert "in run_case" in text and f"{type_name.rsplit('.', 1)[1]}: {message}" in text


# -- many faults in one run ------------------------------------------------------------------


def test_every_fault_in_one_run_each_task_gets_its_own_outcome() -> None:
    items: list[Any] = []
    expected: dict[int, str] = {}
    for where in IN_WORKER:
        for how in HOWS:
            expected[len(items)] = KIND[how]
            items.append(faulty_item(where, how))
            items.append(("ok", "", len(items)))
    # A Pool's workers outlive the call, so its arguments travel pickled (and the argument
    # faults happen) under fork too; ploop.map's would reach its workers unpickled.
    with (
        ploop.Pool(3, chunksize=4, timeout=TIMEOUT) as pool,
        pytest.raises(ploop.LoopError) as info,
    ):
        pool.map(faults.run_case, items)
    err = info.value
    assert {f.index: f.kind for f in err.failures} == expected
    assert err.results == [None if i in expected else i for i in range(len(items))]
