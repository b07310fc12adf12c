"""``@ploop.parametrize_parallel``: one function's cases fanned out across worker processes.

The decorator parses its cases once, at decoration (so at collection for a test module), with
the rules of ``pytest.mark.parametrize``: names, values, ids and ``pytest.param``. What it
returns is a function whose signature no longer has the parametrized names:

- in pytest, that is ONE test item; the plugin (``_testing._cases``) runs its body once per
  case in forked workers after the item's fixtures are set up, and fails it with one report;
- called directly, with no arguments (or with values for the parameters that are not
  parametrized), it runs every case on workers and returns the results in case order, raising
  :class:`~pytest_ploop.LoopError` when any case did not pass, as ``ploop.map`` does.

Cases never cross a process boundary: workers are forked and inherit them, and a task is a
case's index. This module does not import pytest (see ``_case_spec`` for the parsing).
"""

from __future__ import annotations

import enum
import functools
import inspect
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _fanout
from ._backends import LoopRun, check_backend
from ._case_spec import (
    Case,
    XFail,
    make_ids,
    parameter_set,
    parse_names,
    skip_reason,
    xfail_of,
)
from ._engine._outcomes import add_note
from ._engine._schedule import SCHEDULES
from ._errors import LoopError, PloopError, TaskFailure

R = TypeVar("R")

SPEC_ATTR = "_ploop_parametrize_parallel"
SCHEDULE_NAMES = (*SCHEDULES, "lpt")

__all__ = ["Spec", "parametrize_parallel", "spec_of", "unpicklable"]


@dataclass(frozen=True, eq=False)
class Spec:
    """What one ``parametrize_parallel`` call asked for, attached to the function it returns."""

    fn: Callable[..., Any]  # what each case calls: the function, its result checked (_Body)
    argnames: tuple[str, ...]
    cases: tuple[Case, ...]
    workers: int | None
    timeout: float | None
    fail_fast: bool
    schedule: str | None
    signature: inspect.Signature  # the function's, without the parametrized names
    backend: str | None = None  # None: --ploop-backend in pytest, else "local"
    address: str | None = None  # the Dask scheduler's, with backend="dask"

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def by_id(self) -> dict[str, Case]:
        return {c.id: c for c in self.cases}


def parametrize_parallel(
    argnames: str | Sequence[str],
    argvalues: Iterable[Any],
    *,
    ids: Sequence[object | None] | Callable[[Any], object | None] | None = None,
    workers: int | str | None = None,
    timeout: float | None = None,
    fail_fast: bool = False,
    schedule: str | None = None,
    backend: str | None = None,
    address: str | None = None,
) -> Callable[[Callable[..., R]], Callable[..., list[R]]]:
    """Run a test's (or any function's) cases in worker processes, with one report.

    ``argnames``, ``argvalues`` and ``ids`` are those of ``pytest.mark.parametrize``: a
    comma-separated string or a list of names; one value per case (a tuple of values with
    several names); ``pytest.param(..., id=..., marks=...)`` for a case's id and its ``skip``,
    ``skipif`` and ``xfail`` marks.

    In pytest the decorated test is one item. Its fixtures are set up once, in the item's
    process; then each case runs in a forked worker that inherits the fixture values
    (``tmp_path`` is a sub-directory per case). If any case fails, crashes or times out, the
    item fails with one report listing each such case: id, parameters, traceback (assertions
    explained as pytest does), captured output. ``--ploop-case=ID`` runs only the named cases,
    in the test's own process, so ``--pdb`` works. Inside a ``--ploop-workers`` run the
    workers of every fan-out share a budget of processes (the CPUs by default).

    Called directly (outside pytest), the decorated function runs every case and returns the
    results in case order; the arguments given to the call (bound to its signature, which no
    longer has the parametrized names) are passed to every case.

    Args:
        argnames: the parametrized parameters: ``"seed"``, ``"a, b"`` or ``["a", "b"]``.
        argvalues: the cases: values, tuples of values, or ``pytest.param`` objects.
        ids: one id per case (``None`` entries get the automatic id), or a function that
            returns a value's id (or ``None`` for the automatic one).
        workers: the most worker processes (an int, or ``"auto"``); ``None``: the CPUs this
            process may use (within the shared budget under ``--ploop-workers``). Called
            outside pytest, ``workers=1`` runs the cases in the calling process.
        timeout: seconds a case may run; an overdue case's worker is killed and the case
            counts as timed out.
        fail_fast: stop at the first case that does not pass; the rest are not run.
        schedule: ``"dynamic"``, ``"static"``, ``"guided"``, or ``"lpt"`` (longest first by
            the durations the pytest cache recorded in an earlier run). ``None``: ``"lpt"``
            when durations are recorded, else ``"dynamic"``.
        backend: ``"local"`` (forked workers) or ``"dask"`` (a Dask distributed cluster;
            the cases and the fixture values are then pickled to its workers: see
            docs/dask.md). ``None``: ``--ploop-backend`` in pytest, else ``"local"``.
        address: with ``backend="dask"``, the scheduler (``"tcp://host:8786"``); ``None``:
            the cluster of ``--ploop-backend=dask://HOST:PORT`` in pytest, else a local
            cluster of ``workers`` processes, started for the call (in pytest: once per run).

    Returns:
        A decorator. The function it returns runs every case when called.

    Raises:
        ValueError, TypeError: bad input, when decorating (so at collection in pytest): an
            async or generator function, names the function does not take, values that do
            not match the names, ids of the wrong number or an ``ids`` function that raises,
            ``workers`` below 1, a ``timeout`` that is not above 0.
        TypeError: (from a direct call) arguments that do not fit the decorated function's
            signature, before any case runs.
        LoopError: (from a direct call) some case did not pass; ``err.results`` holds the
            results of the others.

    Example:
        >>> import pytest_ploop as ploop
        >>> @ploop.parametrize_parallel("x, y", [(1, 2), (3, 4)], workers=2)
        ... def add(x, y):
        ...     return x + y
        >>> add()
        [3, 7]
    """
    names, force_tuple = parse_names(argnames)
    values = list(argvalues)
    options = _check_options(workers, timeout, fail_fast, schedule, ids)
    if backend is not None or address is not None:
        check_backend(backend or "local", address, "parametrize_parallel: ")
        options.update(backend=backend, address=address)

    def decorate(fn: Callable[..., R]) -> Callable[..., list[R]]:
        spec = _make_spec(fn, names, force_tuple, values, ids, options)

        @functools.wraps(fn)
        def run_every_case(*args: Any, **kwargs: Any) -> list[R]:
            __tracebackhide__ = True
            return call_plain(spec, args, kwargs)

        run_every_case.__signature__ = spec.signature  # type: ignore[attr-defined]
        setattr(run_every_case, SPEC_ATTR, spec)
        return run_every_case

    return decorate


def spec_of(obj: object) -> Spec | None:
    """The :class:`Spec` of a decorated function (or a method bound to one), else ``None``."""
    spec = getattr(getattr(obj, "__func__", obj), SPEC_ATTR, None)
    return spec if isinstance(spec, Spec) else None


# -- checking the call -------------------------------------------------------------------


def _check_options(
    workers: int | str | None,
    timeout: float | None,
    fail_fast: bool,
    schedule: str | None,
    ids: object,
) -> dict[str, Any]:
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int | str):
            raise TypeError(f"parametrize_parallel: workers={workers!r} must be an int or 'auto'")
        if isinstance(workers, str) and workers.strip().lower() != "auto":
            raise ValueError(
                f"parametrize_parallel: workers={workers!r} must be a whole number of at "
                "least 1, 'auto', or None"
            )
        if isinstance(workers, int) and workers < 1:
            raise ValueError(
                f"parametrize_parallel: workers={workers} must be at least 1 (None or 'auto' "
                "for the CPUs available)"
            )
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise ValueError(
            f"parametrize_parallel: timeout={timeout!r} must be a number of seconds above 0, "
            "or None"
        )
    if schedule is not None and schedule not in SCHEDULE_NAMES:
        choices = ", ".join(repr(s) for s in SCHEDULE_NAMES)
        raise ValueError(
            f"parametrize_parallel: schedule={schedule!r} is not one of {choices} (or None)"
        )
    if ids is not None and not callable(ids) and isinstance(ids, str | bytes):
        raise TypeError("parametrize_parallel: ids must be a list of ids or a function, not a str")
    count = None if workers is None or isinstance(workers, str) else workers
    return {"workers": count, "timeout": timeout, "fail_fast": bool(fail_fast),
            "schedule": schedule}  # fmt: skip


def _make_spec(
    fn: Callable[..., Any],
    names: tuple[str, ...],
    force_tuple: bool,
    argvalues: list[Any],
    ids: Any,
    options: dict[str, Any],
) -> Spec:
    if not callable(fn):
        raise TypeError(f"parametrize_parallel decorates a function, not {fn!r:.60}")
    where = getattr(fn, "__qualname__", repr(fn))
    if spec_of(fn) is not None:
        raise TypeError(
            f"parametrize_parallel: {where} is decorated twice; give one decorator every "
            "parameter (argnames='a, b' with tuples of values)"
        )
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"parametrize_parallel: {where} is async; it takes plain functions")
    if inspect.isgeneratorfunction(fn):
        # Calling it only makes a generator: no case would run its body, and all would pass.
        raise TypeError(
            f"parametrize_parallel: {where} uses 'yield', so calling it would not run its "
            "body and every case would pass unrun; 'yield' is allowed in fixtures, but not in "
            "tests: move the code around the yield into a fixture"
        )
    signature = inspect.signature(fn)
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name in names:
        p = params.get(name)
        if p is None and not takes_any:
            taken = ", ".join(params) or "nothing"
            raise TypeError(
                f"parametrize_parallel: {where}() takes no argument {name!r} (it takes: {taken})"
            )
        if p is not None and p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(
                f"parametrize_parallel: {where}(): {name!r} must be a parameter "
                "that can be passed by name"
            )
    sets = [parameter_set(v, names, force_tuple, where) for v in argvalues]
    case_ids = make_ids(names, sets, ids, where)
    cases = tuple(
        Case(i, case_ids[i], dict(zip(names, values, strict=True)), marks)
        for i, (values, marks, _) in enumerate(sets)
    )
    outer = signature.replace(parameters=[p for n, p in params.items() if n not in names])
    return Spec(_Body(fn), names, cases, signature=outer, **options)


class _Body:
    """The decorated function as each case calls it (``Spec.fn``): the function, and then a
    check of what it returned, as pytest checks a test's result.

    An ``async def`` behind a sync wrapper (a retry helper made with ``functools.wraps``)
    returns a coroutine without running a line of its body: its cases would pass unrun. Such
    a case fails instead, as pytest fails such a test.

    It stands for the function where the plugin looks at it: ``__code__`` (which the Dask
    task sets again on the worker, to the test's own file name), ``__globals__`` (the names
    a ``skipif`` string sees), and the names and ``__wrapped__`` of ``functools.wraps``.
    """

    __wrapped__: Callable[..., Any]

    def __init__(self, fn: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fn)
        self._where = getattr(fn, "__qualname__", repr(fn))

    @property
    def __code__(self) -> Any:
        return self.__wrapped__.__code__

    @__code__.setter
    def __code__(self, code: Any) -> None:
        self.__wrapped__.__code__ = code

    @property
    def __globals__(self) -> Any:
        return self.__wrapped__.__globals__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        value = self.__wrapped__(*args, **kwargs)
        if hasattr(value, "__await__") or hasattr(value, "__aiter__"):
            raise _not_awaited(self._where, value)
        return value


def _not_awaited(where: str, value: object) -> BaseException:
    """The failure of a case whose call returned a coroutine (or another awaitable): in
    pytest, pytest's own failure without a traceback (the body never ran: there is no line of
    it to show); else a ``TypeError``."""
    if inspect.iscoroutine(value):
        value.close()  # else it warns, when collected, that it was never awaited
    message = (
        f"async def functions are not natively supported: {where}() returned an awaitable "
        f"({type(value).__name__}) that nothing awaits, so its body did not run.\n"
        "parametrize_parallel calls each case as a plain function (an async plugin "
        "such as pytest-asyncio or anyio does not reach its cases): make it a plain def "
        "that runs the async code, e.g. with asyncio.run()"
    )
    pytest = sys.modules.get("pytest")
    if pytest is not None:
        failure: BaseException = pytest.fail.Exception(message, pytrace=False)
        return failure
    return TypeError(message)


# -- the plain call --------------------------------------------------------------------------


class Expected(enum.Enum):
    """What a worker returns for a case that failed as its ``xfail`` mark expected."""

    XFAILED = "xfailed"


class XPassStrict(AssertionError):
    """A case marked ``xfail(strict=True)`` passed."""


class _PlainTask:
    """The task of a direct call: ``task(case_index)`` runs that case in a worker."""

    def __init__(self, spec: Spec, given: dict[str, Any], xfails: list[XFail | None]) -> None:
        self.spec, self.given, self.xfails = spec, given, xfails
        self.signature = inspect.signature(spec.fn)  # the function's own: every parameter

    def __call__(self, index: int) -> Any:
        case, xfail = self.spec.cases[index], self.xfails[index]
        args, kwargs = _case_call(self.signature, self.given, case.params)
        try:
            value = self.spec.fn(*args, **kwargs)
        except Exception as exc:
            if xfail is not None and xfail.expects(exc):
                return Expected.XFAILED
            raise
        if xfail is not None and xfail.strict:
            raise XPassStrict(f"[XPASS(strict)] {xfail.reason}".rstrip())
        return value


def _case_call(
    signature: inspect.Signature, given: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One case's call: the call's arguments (bound to the decorated function's signature)
    and the case's values, each passed where the function's own signature puts it (so an
    argument given by position never lands on a parametrized name)."""
    arguments = dict(given)
    extra = {}
    for name, value in params.items():
        if name in signature.parameters:
            arguments[name] = value
        else:
            extra[name] = value
    if extra:  # names the function takes through its **kwargs (checked when decorating)
        var = next(n for n, p in signature.parameters.items() if p.kind is p.VAR_KEYWORD)
        arguments[var] = {**arguments.get(var, {}), **extra}
    bound = inspect.BoundArguments(signature, arguments)
    return bound.args, bound.kwargs


def call_plain(spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """Run every case of ``spec`` (a direct call of the decorated function)."""
    __tracebackhide__ = True
    given = _bind(spec, args, kwargs)
    namespace = dict(getattr(spec.fn, "__globals__", {}))
    results: list[Any] = [None] * len(spec.cases)
    runnable, xfails = [], []
    for case in spec.cases:
        xfail = xfail_of(case, namespace, strict_default=False)
        xfails.append(xfail)
        if skip_reason(case, namespace) is None and (xfail is None or xfail.run):
            runnable.append(case.index)
    task = _PlainTask(spec, given, xfails)
    plan = _fanout.Plan(
        workers=spec.workers,
        timeout=spec.timeout,
        fail_fast=spec.fail_fast,
        schedule=spec.schedule if spec.schedule in SCHEDULES else "dynamic",
        inline=spec.workers == 1 and spec.backend != "dask",
        backend=spec.backend or "local",
        address=spec.address,
    )
    run = _run_plain(spec, task, runnable, plan)
    for batch in run.outcomes.ready:
        for pos, (i, value) in enumerate(zip(batch.indices, batch.values, strict=True)):
            if pos not in batch.failed:
                results[runnable[i]] = None if isinstance(value, Expected) else value
    _fanout.reraise_interrupt(run)
    failures = [run.outcomes.failures[i] for i in sorted(run.outcomes.failures)]
    if failures:
        raise _loop_error(spec, runnable, failures, results)
    return results


def _bind(spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, bound to the signature the decorated function
    shows; a call that does not fit it raises here, in the caller, before any case runs."""
    __tracebackhide__ = True
    clash = sorted(set(kwargs) & set(spec.argnames))
    if clash:
        raise TypeError(
            f"{spec.name}() runs every case of {', '.join(clash)}: do not pass "
            f"{'it' if len(clash) == 1 else 'them'} to the call"
        )
    try:
        return dict(spec.signature.bind(*args, **kwargs).arguments)
    except TypeError as exc:
        raise TypeError(f"{spec.name}(): {exc}") from None


def _run_plain(spec: Spec, task: _PlainTask, runnable: list[int], plan: _fanout.Plan) -> LoopRun:
    """``_fanout.run``; on Dask, a run that cannot start because an argument or a case does
    not pickle names it (the backend can only name the task, which holds them all)."""
    __tracebackhide__ = True
    try:
        return _fanout.run(task, runnable, plan)
    except PloopError:
        reason = unpicklable(task.given, "argument", spec.cases) if plan.backend == "dask" else None
        if reason is None:
            raise
    raise PloopError(
        f"{spec.name}() runs its cases on Dask, which sends them and the call's arguments to "
        f"its workers pickled: {reason}. Give picklable values (a case can make the object "
        "from them), or run on the local backend (backend='local'), whose forked workers "
        "inherit them"
    )


def unpicklable(named: Mapping[str, Any], what: str, cases: Sequence[Case]) -> str | None:
    """Why the data of a Dask run cannot be sent: the first of the ``named`` values (the
    test's fixture values, or a direct call's arguments: ``what`` says which), else the first
    case, that cannot be pickled; ``None`` when all of them can."""
    import cloudpickle  # Dask's own dependency: only called for a run on Dask

    def error(value: object) -> str | None:
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    for name, value in named.items():
        if (err := error(value)) is not None:
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            return (
                f"the {what} {name!r} (a {kind.removeprefix('builtins.')}) cannot be pickled: {err}"
            )
    for case in cases:
        if (err := error(dict(case.params))) is not None:
            return f"the values of case {case.id} ({case.describe()}) cannot be pickled: {err}"
    return None


def _loop_error(
    spec: Spec, runnable: list[int], failures: list[TaskFailure], results: list[Any]
) -> LoopError:
    """One ``LoopError`` naming every case that did not pass by its id and parameters."""
    kinds = Counter(f.kind.replace("_", " ") for f in failures)
    head = f"{len(failures)} of {len(spec.cases)} cases did not pass"
    lines = [f"{head} ({', '.join(f'{n} {k}' for k, n in kinds.items())})"]
    records = []
    for f in failures:
        case = spec.cases[runnable[f.index]]
        add_note(f.exception, f"ploop: case {case.id} ({case.describe()})")
        records.append(
            TaskFailure(case.index, f.kind, case.describe(), f.traceback, f.exception, f.worker)
        )
        text = str(f.exception).splitlines()[0] if str(f.exception) else ""
        lines.append(
            f"  case {case.id} ({f.kind.replace('_', ' ')}), {case.describe()}: "
            f"{type(f.exception).__name__}: {text}"
        )
    if len(lines) > 11:
        lines[11:] = [f"  ... and {len(lines) - 11} more (see .failures)"]
    return LoopError(
        "\n".join(lines),
        [f.exception for f in failures],
        failures=records,
        results=results,
        total=len(spec.cases),
        not_consumed=0,
    )
