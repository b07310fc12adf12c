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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _fanout
from ._backends import check_backend
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
from ._errors import LoopError, TaskFailure

R = TypeVar("R")

SPEC_ATTR = "_ploop_parametrize_parallel"
SCHEDULE_NAMES = (*SCHEDULES, "lpt")

__all__ = ["Spec", "parametrize_parallel", "spec_of"]


@dataclass(frozen=True, eq=False)
class Spec:
    """What one ``parametrize_parallel`` call asked for, attached to the function it returns."""

    fn: Callable[..., Any]
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
    results in case order; keyword arguments given to the call are passed to every case.

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
        ValueError, TypeError: bad input, when decorating (so at collection in pytest): names
            the function does not take, values that do not match the names, ids of the
            wrong number, ``workers`` below 1, a ``timeout`` that is not above 0.
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
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"parametrize_parallel: {where} is async; it takes plain functions")
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
    return Spec(fn, names, cases, signature=outer, **options)


# -- the plain call --------------------------------------------------------------------------


class Expected(enum.Enum):
    """What a worker returns for a case that failed as its ``xfail`` mark expected."""

    XFAILED = "xfailed"


class XPassStrict(AssertionError):
    """A case marked ``xfail(strict=True)`` passed."""


class _PlainTask:
    """The task of a direct call: ``task(case_index)`` runs that case in a worker."""

    def __init__(
        self, spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any], xfails: list[XFail | None]
    ) -> None:
        self.spec, self.args, self.kwargs, self.xfails = spec, args, kwargs, xfails

    def __call__(self, index: int) -> Any:
        case, xfail = self.spec.cases[index], self.xfails[index]
        try:
            value = self.spec.fn(*self.args, **self.kwargs, **case.params)
        except Exception as exc:
            if xfail is not None and xfail.expects(exc):
                return Expected.XFAILED
            raise
        if xfail is not None and xfail.strict:
            raise XPassStrict(f"[XPASS(strict)] {xfail.reason}".rstrip())
        return value


def call_plain(spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """Run every case of ``spec`` (a direct call of the decorated function)."""
    __tracebackhide__ = True
    clash = sorted(set(kwargs) & set(spec.argnames))
    if clash:
        raise TypeError(
            f"{spec.name}() runs every case of {', '.join(clash)}: do not pass "
            f"{'it' if len(clash) == 1 else 'them'} to the call"
        )
    namespace = dict(getattr(spec.fn, "__globals__", {}))
    results: list[Any] = [None] * len(spec.cases)
    runnable, xfails = [], []
    for case in spec.cases:
        xfail = xfail_of(case, namespace, strict_default=False)
        xfails.append(xfail)
        if skip_reason(case, namespace) is None and (xfail is None or xfail.run):
            runnable.append(case.index)
    task = _PlainTask(spec, args, kwargs, xfails)
    plan = _fanout.Plan(
        workers=spec.workers,
        timeout=spec.timeout,
        fail_fast=spec.fail_fast,
        schedule=spec.schedule if spec.schedule in SCHEDULES else "dynamic",
        inline=spec.workers == 1 and spec.backend != "dask",
        backend=spec.backend or "local",
        address=spec.address,
    )
    run = _fanout.run(task, runnable, plan)
    for batch in run.outcomes.ready:
        for pos, (i, value) in enumerate(zip(batch.indices, batch.values, strict=True)):
            if pos not in batch.failed:
                results[runnable[i]] = None if isinstance(value, Expected) else value
    _fanout.reraise_interrupt(run)
    failures = [run.outcomes.failures[i] for i in sorted(run.outcomes.failures)]
    if failures:
        raise _loop_error(spec, runnable, failures, results)
    return results


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
