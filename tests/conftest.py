"""Shared fixtures (flaskr style): app, client, session, a frozen clock, the SMS recorder, logins;
the Twilio fixtures (Prism + the real SDK, canned errors) come from the plugin below.

DB-backed tests run once per backend: `sqlite`, then `postgresql` when a server is reachable.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from tests.support.dbs import PostgresFactory, SqliteFactory
from tests.support.settings import app_config

pytest_plugins = ["tests.twilio.fixtures"]

def pytest_configure(config):
    import logging
    import tempfile

    from tests.support.privacy import COLLECTOR, OWN_HANDLER_LOGGERS, log_dir
    # Never the checkout's instance/: `make run` keeps its secret key and database there. Set in
    # the environment, so the app servers the tests start inherit it too. Each xdist worker has its
    # own, as each host would: what is in it (the hash slots) is shared by one host's processes.
    os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="recovery-instance-")
    log_dir()
    root = logging.getLogger()
    root.addHandler(COLLECTOR)
    for name in OWN_HANDLER_LOGGERS:
        logging.getLogger(name).addHandler(COLLECTOR)
    root.setLevel(logging.DEBUG)


def _is_worker(config) -> bool:
    """A pytest-xdist worker (`make test` runs the in-process tests on two)."""
    return hasattr(config, "workerinput")


_WORKER_PROBLEMS: list[str] = []


def pytest_sessionfinish(session, exitstatus):
    """No log line of the whole run (in-process or subprocess) carried a canary value: checked once
    every test and fixture is done, whatever order the tests ran in. Under xdist each worker checks
    its own records and hands its findings to the controller, which fails the run."""
    import logging

    from tests.support.privacy import COLLECTOR, privacy_problems, scan_log_files
    problems: list[str] = []
    if getattr(session, "items", None) and not session.config.option.collectonly:
        installed = COLLECTOR in logging.getLogger().handlers
        problems = privacy_problems(COLLECTOR, scan_log_files(), installed=installed)
    if _is_worker(session.config):
        session.config.workeroutput["privacy_problems"] = problems
        return
    problems += _WORKER_PROBLEMS
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            (reporter.write_line if reporter else print)(f"PRIVACY CHECK FAILED: {problem}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _WORKER_PROBLEMS.extend(getattr(node, "workeroutput", {}).get("privacy_problems", []))


def pytest_unconfigure(config):
    import shutil
    folder = os.environ.get("INSTANCE_PATH", "")
    if os.path.basename(folder).startswith("recovery-instance-"):
        shutil.rmtree(folder, ignore_errors=True)


BACKENDS = ["sqlite", "postgresql"]
if os.environ.get("TEST_BACKENDS"):
    BACKENDS = os.environ["TEST_BACKENDS"].split(",")


@pytest.fixture(scope="session", params=BACKENDS)
def db_factory(request, tmp_path_factory):
    if request.param == "sqlite":
        factory = SqliteFactory(tmp_path_factory.mktemp("sqlite"))
    else:
        factory = PostgresFactory()
    yield factory
    factory.close()


@pytest.fixture
def db_url(db_factory):
    url = db_factory.new()
    yield url
    db_factory.drop(url)


@pytest.fixture
def app(db_url):
    from app import create_app
    from recovery.store.db import db
    app = create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def session(app):
    from recovery.store.db import db
    return db.session


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sms(app):
    """The recording SMS gateway the app sends through in tests."""
    from recovery.messaging.factory import gateway
    return gateway()


@pytest.fixture
def frozen(time_machine):
    """Freeze the clock at a known instant; tests move it with frozen.move_to(...)."""
    time_machine.move_to(datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc), tick=False)
    return time_machine


@pytest.fixture
def make_app(db_url):
    """Another app on the same test database with different settings; disposed afterwards."""
    from contextlib import contextmanager

    from app import create_app
    from recovery.store.db import db
    from tests.support.settings import app_config

    @contextmanager
    def factory(**overrides):
        other = create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url, **overrides))
        with other.app_context():
            try:
                yield other
            finally:
                db.session.remove()
                db.engine.dispose()
    return factory
