"""``dask_lock`` and ``dask_semaphore``: ploop's named locks across a Dask cluster."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("distributed")

from dask_support import dask_map, hold, try_lock

from pytest_ploop import LockTimeout, LoopError, RemoteException
from pytest_ploop._backends._dask_sync import dask_lock, dask_semaphore


def _overlaps(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one time."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    return max(itertools.accumulate(step for _, step in events))


def test_a_lock_excludes_tasks_on_other_workers(backend) -> None:
    free, _ = dask_map(backend, hold, [("free", 4, 0.1)] * 4, chunksize=1)
    assert _overlaps(free) == 2  # without the lock, the two workers overlap
    locked, run = dask_map(backend, hold, [("db", 1, 0.05)] * 8, chunksize=1)
    assert _overlaps(locked) == 1
    assert {r.worker for r in run.record.tasks} == {"dask-0", "dask-1"}  # both took part


def test_a_held_lock_times_out_in_the_tasks(backend) -> None:
    with dask_lock("held", client=backend.client), pytest.raises(LoopError) as info:
        dask_map(backend, try_lock, [("held", 0.2)] * 3, chunksize=1)
    assert {f.kind for f in info.value.failures} == {"failed"}
    # LockTimeout does not survive pickling (its __init__ wants three arguments): it comes
    # back as a RemoteException that names it, as from the local backend's workers.
    for f in info.value.failures:
        assert isinstance(f.exception, RemoteException)
        assert f.exception.type_name == "pytest_ploop.LockTimeout"
        assert "could not acquire 'held' within 0.2s" in str(f.exception)
    # Released: the tasks get it.
    assert dask_map(backend, try_lock, [("held", 5.0)] * 2)[0] == ["got it", "got it"]


def test_semaphore_slots_are_checked(backend) -> None:
    with pytest.raises(ValueError, match="slots=0"), dask_semaphore("s", 0):
        pass
    first = dask_semaphore("two", 2, client=backend.client)
    second = dask_semaphore("two", 2, client=backend.client)
    third = dask_semaphore("two", 2, timeout=0.1, client=backend.client)
    with first, second, pytest.raises(LockTimeout), third:
        pass
