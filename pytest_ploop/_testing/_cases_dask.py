"""``parametrize_parallel`` tests whose cases run on a Dask cluster (``--ploop-backend=dask``
or ``dask://HOST:PORT``, or the decorator's ``backend="dask"``).

    item's process (fixtures set up)                 a Dask worker
    run_item: the item's task -> DaskCaseTask ─────> DaskCaseTask(index): the case's params
      (the test function, its fixture values,          and the fixture values, unpickled;
       the cases' params: pickled, no item)            stdout/stderr redirected, the body,
       │<──────────── CaseResult (or CaseFailed) ───── the failure rendered with pytest's
    the same report as for forked workers              own ExceptionInfo.getrepr

What differs from forked workers: nothing is inherited, so the fixture values must pickle
(a value that does not fails the test with the reason); output is captured at the Python level
(``sys.stdout``/``sys.stderr``; not what a subprocess writes to the file descriptors); the
failure's traceback starts at the test function (no ``item.repr_failure`` on the worker).

The Dask connection is one per pytest run (per process, under ``--ploop-workers``) and per
address, opened at the first decorated test that needs it and closed when the run ends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
import traceback
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._case_spec import Case, XFail
from .._engine import _worker
from .._fanout import budget_size
from .._parametrize import Spec
from . import _cases_report
from ._cases_report import FAILING, CaseResult, case_outcome
from ._settings import read_backend

if TYPE_CHECKING:
    from .._backends._dask import DaskBackend
    from ._cases import _ItemTask

_BACKENDS = pytest.StashKey[dict[str | None, "DaskBackend"]]()

__all__ = ["DaskCaseTask", "backend_fields", "for_backend"]


def backend_fields(item: pytest.Function, spec: Spec) -> dict[str, Any]:
    """The backend fields of the item's ``_fanout.Plan``: none for the local backend; for
    Dask, the connection of this run to use.

    The decorator's ``backend=`` wins over ``--ploop-backend``; ``backend="dask"`` without an
    address uses the option's cluster when it names one, else a local cluster.
    """
    kind, address = spec.backend, spec.address
    run_kind, run_address = read_backend(item.config)
    if kind is None:
        kind, address = run_kind, run_address
    elif kind == "dask" and address is None and run_kind == "dask":
        address = run_address
    if kind != "dask":
        return {}
    return {"backend": "dask", "address": address, "dask": _connection(item.config, address)}


def _connection(config: pytest.Config, address: str | None) -> DaskBackend:
    """This run's Dask connection to ``address`` (``None``: a local cluster of one process
    per slot of the fan-out budget: the CPUs, or ``--ploop-fanout-budget``)."""
    from .._backends import open_dask

    opened = config.stash.setdefault(_BACKENDS, {})
    backend = opened.get(address)
    if backend is None:
        with _quiet():
            backend = open_dask(address, None if address else budget_size())
        opened[address] = backend
        if _worker.in_worker():  # a --ploop-workers worker ends without unconfigure
            _worker.BEFORE_EXIT.append(backend.close)
        else:
            config.add_cleanup(backend.close)
    return backend


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Dask's start-up log (INFO, from loggers with levels of their own) is not the
    test's: keep it out of the test's captured log."""
    before = logging.root.manager.disable
    logging.disable(max(before, logging.INFO))
    try:
        yield
    finally:
        logging.disable(before)


def for_backend(task: _ItemTask, plan: Any) -> Callable[[int], CaseResult]:
    """``task`` itself for local workers; for Dask, a :class:`DaskCaseTask` with what it
    needs of it (the item, its config and session do not travel; case marks are not needed)."""
    if getattr(plan, "backend", "local") != "dask":
        return task
    config = task.item.config
    style = str(config.getoption("tbstyle", "auto"))
    # Paths relative to this directory, as pytest shows them (absolute, as pytest does, when
    # a test changed the working directory).
    cwd = Path.cwd()
    return DaskCaseTask(
        task.spec.fn,
        task.call,
        {c.index: Case(c.index, c.id, dict(c.params)) for c in task.spec.cases},
        dict(task.xfails),
        task.raises,
        "long" if style == "auto" else style,
        bool(config.getoption("showlocals", False)),
        str(cwd) if cwd == config.invocation_params.dir else None,
    )


class DaskCaseTask:
    """``task(case_index)`` on a Dask worker: one case of a decorated test, with the item's
    fixture values (``call``, an ``_cases._Call``); returns its ``CaseResult`` or raises
    ``CaseFailed`` with it, as the forked workers' task does."""

    def __init__(
        self,
        fn: Callable[..., Any],
        call: Any,
        cases: Mapping[int, Case],
        xfails: Mapping[int, XFail | None],
        raises: tuple[type[BaseException], ...] | None,
        tbstyle: str,
        showlocals: bool,
        relative_to: str | None = None,
    ) -> None:
        self.fn, self.call, self.cases, self.xfails = fn, call, cases, xfails
        self.raises = raises  # the item's xfail(raises=...) classes (see _ItemTask)
        self.tbstyle, self.showlocals, self.relative_to = tbstyle, showlocals, relative_to
        code = getattr(fn, "__code__", None)
        self.filename = code.co_filename if isinstance(code, types.CodeType) else ""

    def __repr__(self) -> str:
        # The backend's errors name the function they could not run or load: the test's.
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return f"{getattr(self.fn, '__module__', '?')}.{name} (a parametrize_parallel test)"

    def __setstate__(self, state: dict[str, Any]) -> None:
        # cloudpickle sends the test function by value (the module's attribute is the
        # decorated wrapper) and names its code "<dynamic-code>": its own file again, so
        # that the failure shows the test's source lines (the code is the one pytest's
        # assertion rewriting made, so assertions are explained as well).
        self.__dict__.update(state)
        code = getattr(self.fn, "__code__", None)
        if self.filename and isinstance(code, types.CodeType):
            with contextlib.suppress(AttributeError, TypeError):
                self.fn.__code__ = _renamed(code, self.filename)

    def __call__(self, index: int) -> CaseResult:
        from ._cases import CaseFailed, _warning  # not at import: _cases imports this module

        case = self.cases[index]
        out, err = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            outcome, text, expected = self._run(case)
        seconds = time.perf_counter() - start
        keep = outcome in FAILING
        seen = tuple(_warning(w) for w in caught)
        result = CaseResult(
            index, outcome, text, out.getvalue() if keep else "", err.getvalue() if keep else "",
            seconds, warnings=seen, raised_expected=expected,
        )  # fmt: skip
        if keep:
            raise CaseFailed(result)
        return result

    def _run(self, case: Case) -> tuple[str, str, bool]:
        def run() -> object:
            base = getattr(self.call, "tmp_base", None)
            if isinstance(base, Path):  # another machine: its tmp_path is made there
                base.mkdir(parents=True, exist_ok=True)
            with self.call.arguments(case) as kwargs:
                return self.fn(*self.call.args, **kwargs)

        xfail = self.xfails.get(case.index)
        return case_outcome(run, xfail, self._longrepr, self.raises)

    def _longrepr(self, exc: BaseException) -> str:
        """The failure as pytest renders it (``--tb`` and ``-l`` honoured), from the test
        function's frame down: this module's frames are not the user's business.

        ``funcargs=True`` as in pytest's own ``repr_failure``: the case's arguments head the
        entry (``n = 3``), as with forked workers; without them the entry began with its
        source, whose first line lost its indent to the repr's ``str()`` (which strips).

        Paths are absolute here (``abspath=True``): the worker's working directory is not
        pytest's, and a path relative to it (shorter when the two are near each other) was
        left as it was, where pytest shows it relative to its own."""
        tb = exc.__traceback__
        ours = (__file__, _cases_report.__file__)  # this task's frames, and case_outcome's
        while tb is not None and tb.tb_frame.f_code.co_filename in ours:
            tb = tb.tb_next
        try:
            info = pytest.ExceptionInfo.from_exception(exc.with_traceback(tb))
            text = str(
                info.getrepr(
                    style=self.tbstyle,  # type: ignore[arg-type]
                    abspath=True,
                    showlocals=self.showlocals,
                    funcargs=True,
                )
            )
        except Exception:  # a repr that fails must not lose the failure
            return "".join(traceback.format_exception(type(exc), exc, tb))
        return _relative(text, self.relative_to) if self.relative_to else text


_LOCATION = re.compile(r"^(/[^\n:]+?\.py)(?=:\d+:)", re.M)


def _relative(text: str, base: str) -> str:
    """``text`` with the ``path:line:`` locations that start its lines relative to ``base``
    where that is shorter, as pytest makes them relative to its own working directory (the
    worker's is another, perhaps on another machine)."""

    def shorter(match: re.Match[str]) -> str:
        path = match.group(1)
        rel = os.path.relpath(path, base)
        return rel if len(rel) < len(path) else path

    return _LOCATION.sub(shorter, text)


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` and the code objects nested in it (comprehensions, inner functions) with
    their file name set to ``filename``."""
    consts = tuple(
        _renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)
