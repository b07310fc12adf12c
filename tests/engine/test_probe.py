"""Probe chunks: before any task has finished, a worker gets many tasks but starts them only
for a few milliseconds (see ``_schedule.PROBE_TASKS``); the rest come back to be sent again."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

import pytest_ploop as ploop
from pytest_ploop._engine._messages import ChunkDone
from pytest_ploop._engine._pool import Run, RunOptions
from pytest_ploop._engine._schedule import PROBE_BUDGET_S
from pytest_ploop._engine._workers import Workers
from tests import faults


def _first_chunk(items: list[Any], **options: Any) -> tuple[int, float]:
    """The size and budget of the first chunk a run of ``items`` sends."""
    workers = Workers("fork")
    run = Run(workers, faults.square, items, RunOptions(workers=2, **options))
    try:
        chunk = workers.live()[0].inflight[0]
        return len(chunk.indices), chunk.budget
    finally:
        run.abort("measured")
        run.finish()
        workers.close()


def test_the_first_chunk_of_a_list_of_tiny_tasks_is_a_probe_of_many() -> None:
    assert _first_chunk(list(range(10_000))) == (10_000 // 8, PROBE_BUDGET_S)


@pytest.mark.parametrize(
    "options", [{"timeout": 5.0}, {"chunksize": 1}, {"schedule": "guided"}], ids=str
)
def test_no_probe_with_a_timeout_a_chunksize_or_another_schedule(options: dict[str, Any]) -> None:
    """A probe's tasks share one start, which a per-task timeout cannot count from; a given
    chunk size or policy decides the sizes itself."""
    assert _first_chunk(list(range(10_000)), **options)[1] == 0


def append_index(x: tuple[str, int, float]) -> int:
    """Append this task's index to ``path`` (one short write, atomic with O_APPEND) after
    sleeping ``seconds``; return the index."""
    path, index, seconds = x
    if seconds:
        faults.sleep_then((seconds, None))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{index}\n".encode())
    finally:
        os.close(fd)
    return index


def test_tasks_a_probe_did_not_start_run_once_each(tmp_path: Path) -> None:
    """The first task outlasts the probe's budget: the rest of its chunk comes back and is
    sent again; every task runs exactly once and the results keep their order."""
    path = str(tmp_path / "ran")
    items = [(path, i, 10 * PROBE_BUDGET_S if i == 0 else 0.0) for i in range(200)]
    assert ploop.map(append_index, items, workers=2) == list(range(200))
    assert sorted(int(line) for line in Path(path).read_text().split()) == list(range(200))


def crash_at(x: int) -> int:
    if x == 5:
        os._exit(3)
    return x


def test_a_crash_in_a_probe_blames_its_task_alone() -> None:
    """The probe's first chunk holds tasks 0 to 7 of 60; task 5 ends its worker while the
    slot names the first task of its group: only that task is blamed, the others pass."""
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(crash_at, range(60), workers=2)
    assert [(f.index, f.kind) for f in info.value.failures] == [(5, "crashed")]
    assert info.value.results == [None if i == 5 else i for i in range(60)]


@pytest.mark.parametrize(
    ("n", "failing"),
    [
        (
            40_000,
            {
                0: "raise",
                1: "stop",
                9_999: "raise",
                10_000: "stop",
                20_001: "raise",
                39_999: "raise",
            },
        ),
        (20, {5: "stop"}),  # in the first chunks, which are probes
    ],
    ids=["batches", "probes"],
)
def test_tasks_failing_inside_a_batch_fail_alone_at_their_positions(
    chunks_done: list[ChunkDone], n: int, failing: dict[int, str]
) -> None:
    """Chunks of tiny tasks run as batches (and the first ones as probes); a task that raises
    fails alone at its own position, the tasks around it keep their results: two failing in a
    row, the first and the last of the input as well. A StopIteration too, which a loop
    through map() took for the end of the arguments (the results shifted, or the worker's
    loop never ended)."""
    items = [(failing.get(i, "ok"), i) for i in range(n)]

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("the run did not end in 60 s")  # (the loop through map() spun)

    before = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(ploop.LoopError) as info:
            ploop.map(faults.fail_on, items, workers=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    batches = [len(m.failures) for m in chunks_done if m.batch_end is not None]
    assert sum(batches) == len(failing), f"failures per batch or probe: {batches}"
    err = info.value
    assert sorted(f.index for f in err.failures) == sorted(failing)
    for f in err.failures:
        assert f.kind == "failed"
        assert "failing on purpose" in f.traceback
        expected = "StopIteration" if failing[f.index] == "stop" else "ValueError"
        assert expected in f.traceback
    assert err.results == [None if i in failing else i for i in range(n)]
