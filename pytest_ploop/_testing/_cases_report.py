"""The words of ``parametrize_parallel`` in pytest: a case's result, the item's one failure
report, the command line that reruns a case, the summary line of the cases' timings."""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .._case_spec import XFail
from .._parametrize import Spec
from ._reports import trim_stack

FAILING = ("failed", "crashed", "timed_out", "not_run")
ORDER = ("failed", "crashed", "timed_out", "not_run", "passed", "xpassed", "xfailed", "skipped")


def case_outcome(
    run: Callable[[], object],
    xfail: XFail | None,
    longrepr: Callable[[BaseException], str],
    raises: tuple[type[BaseException], ...] | None = None,
    propagate: tuple[type[BaseException], ...] = (),
) -> tuple[str, str, bool]:
    """Run one case (``run()``, the test function with the case's arguments); its outcome
    as pytest would judge it, with the case's marks, the text its report shows, and whether
    it failed with one of ``raises`` (the item's own ``xfail(raises=...)`` classes, judged
    here, where the exception is).

    The ``propagate`` exceptions are raised, not judged: in the test's own process, Ctrl-C
    and ``pytest.exit()`` end the session, not just the case."""
    try:
        run()
    except propagate:
        raise
    except pytest.skip.Exception as exc:
        return "skipped", exc.msg or "", False
    except pytest.xfail.Exception as exc:
        return "xfailed", exc.msg or "", False
    except BaseException as exc:
        if xfail is not None and xfail.expects(exc):
            return "xfailed", xfail.reason, False
        return "failed", longrepr(exc), raises is not None and isinstance(exc, raises)
    if xfail is not None:
        if xfail.strict:
            return "failed", f"[XPASS(strict)] {xfail.reason}".rstrip(), False
        return "xpassed", xfail.reason, False
    return "passed", "", False


OUTPUT_LIMIT = 10_000  # characters of a case's captured stream shown in the report (the end)
_SEP_WIDTH = 72

__all__ = [
    "CaseResult",
    "count_line",
    "crash_text",
    "failure_report",
    "read_output",
    "rerun_command",
    "summary_line",
    "trim_stack",
]


@dataclass(frozen=True)
class CaseResult:
    """How one case ended, as the report shows it.

    ``outcome``: passed, failed, crashed, timed_out, not_run, skipped, xfailed or xpassed.
    ``text``: the failure as pytest renders it, the crash or timeout, or a reason.
    ``stdout``, ``stderr``, ``log``: what a case that did not pass printed and logged.
    ``raised_expected``: the case failed with an exception of the classes that the item's
    own ``xfail(raises=...)`` mark names.
    """

    index: int
    outcome: str
    text: str = ""
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    worker: str = ""
    warnings: tuple[tuple[Any, str, str, int], ...] = ()  # category, message, file, line
    log: str = ""
    raised_expected: bool = False


def read_output(path: str) -> str:
    """A captured stream's text, its end when it is long."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    if len(text) > OUTPUT_LIMIT:
        cut = len(text) - OUTPUT_LIMIT
        text = f"[... {cut} characters cut ...]\n" + text[-OUTPUT_LIMIT:]
    return text


def crash_text(exc: BaseException, worker: str) -> str:
    """What a crashed or timed-out case's section says: how its worker ended, and where the
    case was (faulthandler's stack, trimmed to the case's frames)."""
    timeout = getattr(exc, "timeout", None)
    if timeout is not None:
        head = f"ploop: this case timed out after {timeout:g}s; its worker {worker} was killed"
        stack = trim_stack(getattr(exc, "stack", ""))
        return head + (
            "\n\nstack of the worker (most recent call first):\n" + stack if stack else ""
        )
    sig, code = getattr(exc, "signal", None), getattr(exc, "exitcode", None)
    how = f"killed by {sig}" if sig else f"exited with code {code}"
    detail = trim_stack(getattr(exc, "detail", ""))
    return f"ploop: worker {worker} died while running this case ({how})" + (
        f"\n\n{detail}" if detail else ""
    )


def cases(n: int) -> str:
    """``1 case``, ``2 cases``."""
    return f"{n} case{'s' if n != 1 else ''}"


def count_line(results: dict[int, CaseResult], total: int) -> str:
    """``7 of 500 cases failed (5 failed, 1 crashed, 1 timed out); 490 passed, 3 skipped``."""
    counts = Counter(r.outcome for r in results.values())
    bad = [(k, counts[k]) for k in FAILING if counts[k] and k != "not_run"]
    rest = [(k, counts[k]) for k in ORDER if counts[k] and k not in FAILING]
    text = f"{sum(n for _, n in bad)} of {cases(total)} failed"
    if bad:
        text += " (" + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in bad) + ")"
    if counts["not_run"]:
        reasons = sorted({r.text for r in results.values() if r.outcome == "not_run"})
        text += f"; {counts['not_run']} not run ({'; '.join(reasons)})"
    if rest:
        text += "; " + ", ".join(f"{n} {k}" for k, n in rest)
    return text


def failure_report(
    item: pytest.Function, spec: Spec, results: dict[int, CaseResult], total: int
) -> str:
    """The item's one report: the counts (of ``total`` cases: all, or those that
    ``--ploop-case`` named), then each case that did not pass."""
    lines = [count_line(results, total)]
    show = item.config.getoption("showcapture", "all")  # pytest's --show-capture
    lines.append(f"rerun one case in this process (--pdb works): {rerun_command(item, 'ID')}")
    for index in sorted(results):
        result = results[index]
        if result.outcome not in FAILING or result.outcome == "not_run":
            continue
        case = spec.cases[index]
        kind = result.outcome.replace("_", " ")
        lines.append("")
        lines.append(f" case {case.id} ({kind}) ".center(_SEP_WIDTH, "_"))
        lines.append(f"parameters: {case.describe()}")
        where = f" on {result.worker}" if result.worker else ""
        lines.append(f"rerun: {rerun_command(item, case.id)}  ({result.seconds:.2f}s{where})")
        lines.append("")
        lines.append(result.text.rstrip())
        captured = (("stdout", result.stdout), ("stderr", result.stderr), ("log", result.log))
        for name, text in captured:
            if text.strip() and show in ("all", name):
                lines.append(f" captured {name} ".center(_SEP_WIDTH, "-"))
                lines.append(text.rstrip())
    return "\n".join(lines)


def rerun_command(item: pytest.Item, case_id: str) -> str:
    """The command line that runs one case of ``item`` in pytest's own process: its path
    from the directory pytest was started in, the ``-p`` plugins it was given, and
    ``--ploop-case``."""
    params = item.config.invocation_params
    path = os.path.relpath(item.path, params.dir)
    target = path + ("::" + item.nodeid.split("::", 1)[1] if "::" in item.nodeid else "")
    plugins: list[str] = []
    args = list(params.args)
    for i, arg in enumerate(args):
        if arg == "-p" and i + 1 < len(args):
            plugins += ["-p", args[i + 1]]
        elif arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--"):
            plugins += ["-p", arg[2:]]
    return shlex.join(["pytest", target, *plugins, f"--ploop-case={case_id}"])


def summary_line(s: dict[str, Any]) -> str:
    """``500 cases (493 passed, 7 failed) on 8 workers: 12.30s wall, 90.10s of cases ->
    7.33x speedup``."""
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in s["counts"].items())
    text = f"{cases(s['cases'])} ({counts})"
    if s["workers"]:
        text += (
            f" on {s['workers']} worker{'s' if s['workers'] != 1 else ''}: {s['wall_s']:.2f}s "
            f"wall, {s['serial_s']:.2f}s of cases"
        )
        if s["speedup"] is not None:
            text += f" -> {s['speedup']:.2f}x speedup"
    return text
