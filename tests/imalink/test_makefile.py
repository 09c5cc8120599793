"""`make run` installs only what ImaLink needs to run; `make test` (and what needs them) adds the test extras.

The Makefile is read by make itself (`make -n`, which prints what it would do and runs nothing), in a copy of it
beside pyproject.toml, from a fresh clone's state (no .venv) and from a set-up one.
"""

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO, require

pytestmark = pytest.mark.database_independent


@pytest.fixture
def clone(tmp_path):
    require(shutil.which("make") is not None, "make")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def pip_lines(folder, target: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(["make", "-n", target], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "pip install" in line]


def test_make_run_installs_the_project_without_the_test_extras(clone):
    (line,) = pip_lines(clone, "run")
    assert line.endswith(" -e .") and "[test]" not in line


def test_make_test_installs_the_test_extras_on_top(clone):
    lines = pip_lines(clone, "test")
    assert lines[0].endswith(" -e .") and lines[1].endswith(" -e '.[test]'")


def test_once_set_up_make_run_installs_nothing_and_make_test_only_the_extras(clone):
    (clone / ".venv").mkdir()
    (clone / ".venv" / ".installed").touch()  # what `make run` left: newer than pyproject.toml
    assert pip_lines(clone, "run") == []
    assert {line.rsplit(" ", 1)[1] for line in pip_lines(clone, "test")} == {"'.[test]'"}
    assert {line.rsplit(" ", 1)[1] for line in pip_lines(clone, "bench-load")} == {
        "'.[test]'"
    }  # its clients use aiohttp
    (clone / ".venv" / ".installed-test").touch()
    assert pip_lines(clone, "test") == [] and pip_lines(clone, "run") == []
    # The benchmarks that need no test extra never install them.
    for target in ("bench-scan", "bench-pages", "bench-validate", "bench-recovery", "bench-import"):
        (clone / ".venv" / ".installed-test").unlink(missing_ok=True)
        assert pip_lines(clone, target) == [], target


def test_make_test_runs_ruff_lint_format_check_and_the_layers_contract(clone):
    (clone / ".venv").mkdir()
    for stamp in (".installed", ".installed-test"):
        (clone / ".venv" / stamp).touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(["make", "-n", "test"], cwd=clone, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ".venv/bin/ruff check ." in done.stdout and ".venv/bin/ruff format --check ." in done.stdout
    assert ".venv/bin/lint-imports" in done.stdout
