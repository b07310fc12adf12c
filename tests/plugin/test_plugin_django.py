"""pytest-django under ``--ploop-workers``: each worker gets test databases of its own, named
as under xdist (``..._gw0``, ``..._gw1``), with a real Django project on SQLite files.
pytest-django reads the worker's id from ``config.workerinput``, which a worker has as an
xdist worker does."""

from __future__ import annotations

from collections import Counter

import pytest
from plugin_support import Project

pytest.importorskip("pytest_django")

SETTINGS = """
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "test"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(HERE, "app.sqlite3"),
        # A file, not SQLite's in-memory default: a database the workers could share.
        "TEST": {"NAME": os.path.join(HERE, "test_app.sqlite3")},
    }
}
"""

TESTS = """
import os

import pytest
import ploophelp
from django.contrib.auth.models import User
from django.db import connection


@pytest.mark.parametrize("i", range(8))
def test_each_test_has_a_fresh_database(db, i):
    User.objects.create(username=f"user{i}")
    assert User.objects.count() == 1
    ploophelp.log(os.environ.get("PYTEST_XDIST_WORKER", "master"),
                  os.path.basename(connection.settings_dict["NAME"]))
"""

CONFTEST_SUFFIX = """
import pytest
from pytest_django.fixtures import _set_suffix_to_test_databases


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix(worker_id):
    _set_suffix_to_test_databases(suffix=f"own_{worker_id}")
"""


def _databases(project: Project) -> Counter[tuple[str, str]]:
    """(xdist worker id, test database file) per test, from the inner tests' log."""
    names = Counter((e.fields[0], e.fields[1]) for e in project.events())
    project.clear_events()
    return names


def test_each_worker_has_its_own_test_database_as_under_xdist(project: Project) -> None:
    project.pytester.mkpydir("proj").joinpath("settings.py").write_text(SETTINGS)
    project.pytester.makepyfile(test_users=TESTS)
    ds = "--ds=proj.settings"

    project.run(ds).assert_outcomes(passed=8)
    assert _databases(project) == {("master", "test_app.sqlite3"): 8}

    # Before: every worker created, migrated and dropped test_app.sqlite3, and the second
    # one's setup failed with 'table "auth_permission" already exists'.
    project.run(ds, "--ploop-workers=2").assert_outcomes(passed=8)
    ploop = _databases(project)
    assert set(ploop) == {("gw0", "test_app.sqlite3_gw0"), ("gw1", "test_app.sqlite3_gw1")}
    assert sum(ploop.values()) == 8

    project.run(ds, "-n", "2").assert_outcomes(passed=8)
    assert set(_databases(project)) == set(ploop)

    # A project's own suffix fixture takes the worker's id from the worker_id fixture.
    project.pytester.makeconftest(CONFTEST_SUFFIX)
    project.run(ds, "--ploop-workers=2").assert_outcomes(passed=8)
    own = {(w, f"test_app.sqlite3_own_{w}") for w in ("gw0", "gw1")}
    assert set(_databases(project)) == own
