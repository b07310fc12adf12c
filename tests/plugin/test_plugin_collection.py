"""A collection error behaves as in serial pytest: no test runs unless
``--continue-on-collection-errors``."""

from __future__ import annotations

import pytest
from plugin_support import Project, outcomes, ploop_lines


@pytest.fixture
def broken(project: Project) -> Project:
    project.pytester.makepyfile(
        test_good="""
        import ploophelp

        def test_one():
            ploophelp.log("ran", "test_one")

        def test_two():
            ploophelp.log("ran", "test_two")
            assert False
        """,
        test_broken="""
        import module_that_does_not_exist

        def test_never():
            pass
        """,
    )
    return project


def test_a_collection_error_runs_no_test(broken: Project) -> None:
    serial = broken.run()
    parallel = broken.run("--ploop-workers=2")
    assert outcomes(parallel) == outcomes(serial) == {"errors": 1}
    assert parallel.ret == serial.ret == pytest.ExitCode.INTERRUPTED
    parallel.stdout.fnmatch_lines(
        ["*ERROR collecting test_broken.py*", "*Interrupted: 1 error during collection*"]
    )
    assert broken.events() == []  # no test ran, in a worker or elsewhere
    assert not ploop_lines(parallel)


def test_continue_on_collection_errors_runs_the_rest(broken: Project) -> None:
    serial = broken.run("--continue-on-collection-errors")
    assert outcomes(serial) == {"passed": 1, "failed": 1, "errors": 1}
    broken.clear_events()
    parallel = broken.run("--continue-on-collection-errors", "--ploop-workers=2")
    assert outcomes(parallel) == outcomes(serial)
    assert parallel.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
    assert sorted(e.fields[1] for e in broken.events()) == ["test_one", "test_two"]
    assert all(e.worker in ("w0", "w1") for e in broken.events())
    assert ploop_lines(parallel)
