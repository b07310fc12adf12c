"""pytest-django under ``--ploop-workers``: a test database per worker, named as under xdist.

pytest-django gives each xdist worker databases of its own (``test_app_gw0``,
``test_app_gw1``...): its ``django_db_modify_db_settings_xdist_suffix`` fixture reads the
worker's id from ``config.workerinput``, which only xdist's workers have. Setting that
attribute in ploop's workers would tell other plugins that xdist runs (pytest-rerunfailures
then stops reporting its reruns where xdist is not installed), so this plugin replaces that
one fixture instead: registered after pytest-django, its definition wins (a conftest's own
still wins over both). Without it every worker created, migrated and dropped the same test
database, and tests failed with ``table "auth_permission" already exists``.
"""

from __future__ import annotations

import os
import sys

import pytest

from .. import _here

SUFFIX_FIXTURE = "django_db_modify_db_settings_xdist_suffix"


def install(config: pytest.Config) -> None:
    """Register this module's fixture when pytest-django takes part in this run."""
    if config.pluginmanager.hasplugin("django"):
        config.pluginmanager.register(sys.modules[__name__], "ploop-django")


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix() -> None:
    """pytest-django's test databases get this worker's xdist-style id as a suffix (``_gw0``,
    ``_gw1``...), as under xdist; in the main process, none."""
    from pytest_django import fixtures
    from pytest_django.lazy_django import skip_if_no_django

    skip_if_no_django()
    suffix = os.environ.get("PYTEST_XDIST_WORKER") if _here.in_worker() else None
    if not suffix:
        return
    set_suffix = getattr(fixtures, "_set_suffix_to_test_databases", None)
    if set_suffix is None:  # pragma: no cover - a pytest-django that renamed its helper
        raise RuntimeError(
            "pytest-ploop cannot name this worker's test databases: this pytest-django has no "
            "_set_suffix_to_test_databases(). Give each worker its own databases in a "
            "conftest.py fixture django_db_modify_db_settings_xdist_suffix(worker_id)."
        )
    set_suffix(suffix=suffix)
