"""Uses of the decorator that went wrong without a word: a direct call with a positional
argument, bodies that return without running (generators, an ``async def`` behind a sync
wrapper), ``--ploop-case`` checked before deselection, a crash located in the plugin's own
file, a Dask run that blamed the function for what a fixture or a case held, and an ``ids``
function that raises."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from decorator_support import Project, section

from pytest_ploop._parametrize import parametrize_parallel

# The Dask runs are the inner ones' (subprocesses): Dask is never imported here. Imported by a
# test (pytest.importorskip), it was dropped from sys.modules with what else the test imported
# (pytester does that) and the pytest runs of later tests in this process lost the plugin's
# options ("unrecognized arguments: --ploop-shard").
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="needs Dask distributed"
)

# A sync wrapper made with functools.wraps (a retry helper), in both inner modules below.
RETRY = """
def retry(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper
"""

DIRECT = (
    """
import functools
import json
import sys

import casehelp
from pytest_ploop import LoopError
from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", range(3), workers=2)
def square(n, offset=0):
    casehelp.log("case", "square", n)
    return n * n + offset


@parametrize_parallel("n", [1, 2], workers=2)
def spread(first, /, n, *rest, scale=1, **extra):
    return [first, n, list(rest), scale, extra]


"""
    + RETRY
    + """

@parametrize_parallel("n", [1, 2], workers=2)
@retry
async def hidden_async(n):
    casehelp.log("case", "hidden_async", n)


out = {
    "positional": square(100),
    "keyword": square(offset=100),
    "spread": spread(0, 7, 8, scale=3, z=4),
}
for name, call in [("too_many", lambda: square(1, 2)), ("unknown", lambda: square(off=1)),
                   ("missing", lambda: spread())]:
    try:
        call()
    except TypeError as err:
        out[name] = str(err)
try:
    hidden_async()
except LoopError as err:
    out["async"] = [(type(e).__name__, str(e)) for e in err.exceptions]
out["cases"] = [e[3:] for e in casehelp.events("case")]
out["pytest_loaded"] = "pytest" in sys.modules
print("RESULT", json.dumps(out))
"""
)


def test_a_direct_call_binds_its_arguments_to_the_signature_it_shows(
    project: Project,
) -> None:
    script = project.pytester.makepyfile(direct=DIRECT)
    result = project.pytester.runpython(script)
    assert result.ret == 0, result.stderr.str()
    (line,) = [x for x in result.outlines if x.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["positional"] == out["keyword"] == [100, 101, 104]
    assert out["spread"] == [[0, 1, [7, 8], 3, {"z": 4}], [0, 2, [7, 8], 3, {"z": 4}]]
    # A call that does not fit fails at once, in the caller: no case ran for it.
    assert out["too_many"] == "square(): too many positional arguments"
    assert out["unknown"] == "square(): got an unexpected keyword argument 'off'"
    assert out["missing"] == "spread(): missing a required argument: 'first'"
    assert sorted(c for c in out["cases"] if c[0] == "square") == [["square", n] for n in "001122"]
    # Outside pytest an awaitable result fails its case with a TypeError, and is closed.
    assert out["pytest_loaded"] is False
    assert [kind for kind, _ in out["async"]] == ["TypeError", "TypeError"]
    assert out["async"][0][1].startswith(
        "async def functions are not natively supported: hidden_async() returned an awaitable"
    )
    assert not [c for c in out["cases"] if c[0] == "hidden_async"]
    assert "never awaited" not in result.stderr.str()


def _generator(n: int) -> Any:
    yield n


async def _async_generator(n: int) -> Any:
    yield n


@pytest.mark.parametrize("fn", [_generator, _async_generator])
def test_generator_functions_are_refused_when_decorating(fn: Any) -> None:
    with pytest.raises(TypeError, match=rf"parametrize_parallel: {fn.__name__} (uses 'yield'|is)"):
        parametrize_parallel("n", [1])(fn)


BODIES = (
    """
import functools

from pytest_ploop._parametrize import parametrize_parallel


"""
    + RETRY
    + """

@parametrize_parallel("n", [1, 2], workers=2)
@retry
async def test_hidden_async(n):
    assert n == 999
"""
)

GENERATOR = """
from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", [1, 2])
def test_generator_body(n):
    assert n == 999
    yield
"""


def test_a_generator_test_is_a_collection_error(project: Project) -> None:
    project.pytester.makepyfile(test_gen=GENERATOR)
    result = project.run_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["E   TypeError: parametrize_parallel: test_generator_body uses 'yield', *fixture*"]
    )


def test_an_async_body_behind_a_sync_wrapper_fails_each_case(project: Project) -> None:
    project.pytester.makepyfile(test_bodies=BODIES)
    result = project.run("-W", "error::RuntimeWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*2 of 2 cases failed (2 failed)*"])
    for case_id in ("1", "2"):
        text = section(result, case_id)
        # pytest's words, and no traceback: the body never ran, there is no line of it to show.
        first, second = text.split("\n\n", 1)[1].splitlines()[:2]
        assert first.startswith(
            "async def functions are not natively supported: test_hidden_async() returned an "
            "awaitable (coroutine) that nothing awaits"
        ), text
        assert second.startswith("parametrize_parallel calls each case as a plain function")
        assert second.endswith("asyncio.run()")
    assert "never awaited" not in result.stdout.str() + result.stderr.str()
    # Run here (--ploop-case), the case fails as pytest fails an async test.
    again = project.run("--ploop-case=1", "-W", "error::RuntimeWarning")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["async def functions are not natively supported: *"])
    assert "never awaited" not in again.stdout.str() + again.stderr.str()


SELECTION = """
import pytest

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", [1, 2])
def test_alpha(n):
    assert n == 1


@pytest.mark.slow
@parametrize_parallel("m", [5, 6])
def test_beta(m):
    pass
"""


@pytest.mark.parametrize(
    "deselect",
    [["-k", "beta"], ["-m", "slow"], ["--deselect", "test_sel.py::test_alpha"]],
    ids=["-k", "-m", "--deselect"],
)
@pytest.mark.parametrize("case_id", ["1", "nope"])
def test_ploop_case_names_a_case_of_the_tests_left_after_deselection(
    project: Project, deselect: list[str], case_id: str
) -> None:
    project.pytester.makeconftest(
        "def pytest_configure(config):\n"
        "    config.addinivalue_line('markers', 'slow: a slow test')\n"
    )
    project.pytester.makepyfile(test_sel=SELECTION)
    result = project.run_inprocess(*deselect, f"--ploop-case={case_id}")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(
        [f"*--ploop-case='{case_id}' names no case of the selected tests; their case ids: 5, 6"]
    )
    # A case of the test left is found (it runs here: no worker is started).
    project.run_inprocess(*deselect, "--ploop-case=5").assert_outcomes(passed=1, deselected=1)


LOCATED = """
from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("x", [1, 2], workers=1)
def test_deco(x):
    assert x == 1
"""

INTERRUPTED = """
import os
import signal

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("x", [1], workers=1)
def test_interrupted(x):
    os.kill(os.getppid(), signal.SIGINT)  # Ctrl-C to pytest, while its case runs here
"""


def _line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that starts with ``text``."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


def test_a_failure_is_located_in_the_tests_own_file(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project.pytester.makepyfile(test_located=LOCATED)
    defined, failing = _line_of(path, "@parametrize_parallel"), _line_of(path, "    assert")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # pytest-github-actions-annotate-failures
    result = project.run("--tb=line")
    result.assert_outcomes(failed=1)
    # The line of --tb=line: the test's definition (its decorator's line), as pytest locates
    # the test itself; never the plugin's file.
    result.stdout.fnmatch_lines(
        [f"{path}:{defined}: Failed: 1 of 2 cases failed (1 failed); 1 passed"]
    )
    assert "/pytest_ploop/" not in result.stdout.str()
    if "::error " in result.stderr.str():  # the annotation plugin, where it is installed
        result.stderr.fnmatch_lines([f"::error file=test_located.py,line={defined}::test_deco*"])
    # The case's own traceback is unchanged.
    long = project.run("--tb=long")
    assert f"test_located.py:{failing}: AssertionError" in section(long, "2")


def test_an_interrupt_is_located_in_the_tests_own_file(project: Project) -> None:
    path = project.pytester.makepyfile(test_interrupted=INTERRUPTED)
    result = project.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    defined = _line_of(path, "@parametrize_parallel")
    result.stdout.fnmatch_lines(["*! KeyboardInterrupt !*", f"{path}:{defined}: KeyboardInterrupt"])


UNPICKLABLE = """
import threading

import pytest

from pytest_ploop._parametrize import parametrize_parallel


@pytest.fixture
def lock():
    return threading.Lock()


@parametrize_parallel("n", [1, 2], backend="dask", timeout=30)
def test_fixture(n, lock):
    pass


@parametrize_parallel("n", [2, threading.Lock()], backend="dask", timeout=30)
def test_case_value(n):
    pass
"""


@needs_dask
def test_on_dask_the_fixture_or_case_that_cannot_be_pickled_is_named(project: Project) -> None:
    project.pytester.makepyfile(test_unpicklable=UNPICKLABLE)
    # A local cluster of one process (the budget's size) is enough: nothing reaches it.
    result = project.run("--ploop-fanout-budget=1")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "test_fixture runs its cases on Dask, * the fixture 'lock' (a _thread.lock) cannot "
            "be pickled: TypeError: cannot pickle '_thread.lock' object.",
            "Give picklable values *backend='local'*",
        ]
    )
    assert re.search(
        r"test_case_value runs its cases on Dask, .* the values of case n1 \(n=<unlocked "
        r"_thread\.lock object at 0x\w+>\) cannot be pickled",
        text,
    )
    # A test failure, not the backend's error with the plugin's frames.
    assert "PloopError" not in text and "/pytest_ploop/" not in text


UNPICKLABLE_DIRECT = """
import threading

from pytest_ploop import PloopError
from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", [1, 2], workers=1, backend="dask", timeout=30)
def direct(n, extra=None):
    return n


if __name__ == "__main__":  # Dask's spawned workers import this module again
    try:
        direct(extra=threading.Lock())
    except PloopError as err:
        print("ERROR", err)
"""


@needs_dask
def test_on_dask_a_direct_calls_argument_that_cannot_be_pickled_is_named(
    project: Project,
) -> None:
    script = project.pytester.makepyfile(direct=UNPICKLABLE_DIRECT)
    result = project.pytester.runpython(script)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "ERROR direct() runs its cases on Dask, * the argument 'extra' (a _thread.lock) "
            "cannot be pickled: TypeError: cannot pickle '_thread.lock' object. Give *"
        ]
    )


def test_an_ids_function_that_raises_names_the_test_parameter_and_position() -> None:
    def test_inverse(a: int) -> None:
        pass

    message = (
        "parametrize_parallel: test_an_ids_function_that_raises_names_the_test_parameter_and_"
        "position.<locals>.test_inverse: error raised while trying to determine id of "
        "parameter 'a' at position 1 (the ids function raised ZeroDivisionError: division by "
        "zero)"
    )
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parametrize_parallel("a", [1, 0], ids=lambda v: f"inv{1 / v}")(test_inverse)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
