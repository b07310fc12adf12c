"""Bad input fails at decoration, so at collection in pytest, with the fix in the message;
names, values and ids follow ``pytest.mark.parametrize``; an empty list of cases is what
pytest makes of an empty ``parametrize``. (No case runs here: no process is started.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from decorator_support import Project

from pytest_ploop._parametrize import parametrize_parallel, spec_of


def _takes_seed(seed: int, tmp_path: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("nope", [1]), {}, TypeError, "takes no argument 'nope' (it takes: seed, tmp_path)"),
        (("seed", [1]), {"workers": 0}, ValueError, "workers=0 must be at least 1"),
        (("seed", [1]), {"workers": -2}, ValueError, "workers=-2 must be at least 1"),
        (("seed", [1]), {"workers": "many"}, ValueError, "workers='many' must be a whole number"),
        (("seed", [1]), {"workers": 2.5}, TypeError, "workers=2.5 must be an int or 'auto'"),
        (("seed", [1]), {"timeout": 0}, ValueError, "timeout=0 must be a number of seconds"),
        (("seed", [1]), {"schedule": "random"}, ValueError, "schedule='random' is not one of"),
        (("seed", [1, 2]), {"ids": ["a"]}, ValueError, "2 cases were given with 1 ids"),
        (("seed, tmp_path", [(1, 2, 3)]), {}, ValueError, "equal to the number of values (3)"),
        ((["seed"], [1]), {}, ValueError, "each case needs a sequence of values"),
        (("seed, seed", [(1, 1)]), {}, ValueError, "repeats ['seed']"),
        (("", [1]), {}, ValueError, "must name parameters"),
        (("seed", [1]), {"ids": [object()]}, ValueError, "ids contains an unsupported value"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_when_decorating(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        parametrize_parallel(*args, **kwargs)(_takes_seed)


def test_decorating_twice_is_refused() -> None:
    once = parametrize_parallel("seed", [1])(_takes_seed)
    with pytest.raises(TypeError, match="decorated twice"):
        parametrize_parallel("tmp_path", [1])(once)


def test_the_signature_loses_the_parametrized_names() -> None:
    import inspect

    decorated = parametrize_parallel("seed", [1, 2])(_takes_seed)
    assert list(inspect.signature(decorated).parameters) == ["tmp_path"]
    spec = spec_of(decorated)
    assert spec is not None and [c.params for c in spec.cases] == [{"seed": 1}, {"seed": 2}]


COLLECTION_ERROR = """
from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("seed", range(3), workers=0)
def test_bad(seed):
    pass
"""


def test_bad_input_is_a_collection_error(project: Project) -> None:
    project.pytester.makepyfile(test_bad=COLLECTION_ERROR)
    result = project.run_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR collecting test_bad.py*", "*ValueError: parametrize_parallel: workers=0 must*"]
    )


IDS = """
import enum
import re

import pytest

from pytest_ploop._parametrize import parametrize_parallel


class Color(enum.Enum):
    RED = 1


VALUES = [
    (1, "a"), (1, "a"), (2.5, "\\u00e9\\n"), (None, b"x\\x00"), (Color.RED, re.compile("a+")),
    (int, object()), ("x" * 101, 3), (True, 1j), pytest.param(0, 0, id="given"), ("1", 1),
    ("1", 1),
]


@pytest.mark.parametrize("a, b", VALUES)
def test_reference(a, b):
    pass


@parametrize_parallel("a, b", VALUES)
def test_ours(a, b):
    pass


@pytest.mark.parametrize("a, b", VALUES, ids=lambda v: "v" if v == 1 else None)
def test_reference_idfn(a, b):
    pass


@parametrize_parallel("a, b", VALUES, ids=lambda v: "v" if v == 1 else None)
def test_ours_idfn(a, b):
    pass
"""


def test_case_ids_are_the_ids_pytest_makes(project: Project) -> None:
    project.pytester.makepyfile(test_ids=IDS)
    result = project.run_inprocess("--collect-only", "-q")
    items = [line for line in result.outlines if "::" in line]
    for name in ("", "_idfn"):
        pytests = [i.split("[", 1)[1][:-1] for i in items if f"test_reference{name}[" in i]
        module = project.pytester.path / "test_ids.py"
        spec = spec_of(_load(module).__dict__[f"test_ours{name}"])
        assert spec is not None
        assert [c.id for c in spec.cases] == pytests
    assert sum("test_ours" in i for i in items) == 2  # one item each


def _load(path: Any) -> Any:
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("ids_module", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


EMPTY = """
import pytest

from pytest_ploop._parametrize import parametrize_parallel


@pytest.mark.parametrize("x, y", [])
def test_reference(x, y):
    pass


@parametrize_parallel("x, y", [])
def test_ours(x, y):
    pass
"""


@pytest.mark.parametrize("mark", ["skip", "xfail"])
def test_empty_cases_are_treated_as_pytest_treats_empty_parametrize(
    project: Project, mark: str
) -> None:
    project.pytester.makepyfile(test_empty=EMPTY)
    result = project.run_inprocess("-rsx", "-o", f"empty_parameter_set_mark={mark}")
    result.assert_outcomes(**{"skipped" if mark == "skip" else "xfailed": 2})
    word = "SKIPPED" if mark == "skip" else "XFAIL"
    reason = "got empty parameter set for (x, y)"
    lines = [line for line in result.outlines if line.startswith(word)]
    assert len(lines) == 2 and all(reason in line for line in lines), lines


def test_empty_cases_fail_at_collect_when_asked(project: Project) -> None:
    lines = EMPTY.strip().splitlines()  # as makepyfile writes it; pytest names the decorator's
    reference = 1 + lines.index('@pytest.mark.parametrize("x, y", [])')
    ours = 1 + lines.index('@parametrize_parallel("x, y", [])')
    project.pytester.makepyfile(test_empty=EMPTY)
    result = project.run_inprocess("-o", "empty_parameter_set_mark=fail_at_collect")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"Empty parameter set in 'test_reference' at line {reference}"])
    project.pytester.makepyfile(test_empty=EMPTY.replace("@pytest.mark.parametrize", "#"))
    result = project.run_inprocess("-o", "empty_parameter_set_mark=fail_at_collect")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"Empty parameter set in 'test_ours' at line {ours}"])
