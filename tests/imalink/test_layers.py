"""The layers contract in pyproject.toml (import-linter): the apps import only downward, and the contract notices
when one does not. Run on a copy of the packages, so a violation can be written without touching the repository."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.database_independent

APPS = ("imalink", "jobs", "storages", "imports", "indexing", "copies")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def copy(tmp_path):
    for app in APPS:
        shutil.copytree(REPO / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_line(path: Path, line: str) -> None:
    """Put an import after the module docstring: where a hurried fix would put it."""
    text = path.read_text()
    end = text.index('"""', 3) + 3
    path.write_text(text[:end] + "\n" + line + "\n" + text[end:])


def test_the_tree_keeps_the_layers(copy):
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        ("storages/services.py", "from indexing.writer import write_master_index  # noqa", "storages is not allowed"),
        ("storages/layout.py", "import indexing.recovery  # noqa", "storages is not allowed"),
        ("imports/pipeline.py", "from indexing import writer  # noqa", "imports is not allowed"),
        ("indexing/scanner.py", "from copies import replication  # noqa", "indexing is not allowed"),
        ("jobs/services.py", "from storages.models import FileStorage  # noqa", "jobs is not allowed"),
        ("imalink/errors.py", "from jobs.models import Job  # noqa", "imalink is not allowed"),
    ],
)
def test_an_upward_import_in_a_domain_module_breaks_the_contract(copy, module, line, broken):
    add_line(copy / module, line)
    done = lint_imports(copy)
    assert done.returncode != 0 and broken in done.stdout, done.stdout + done.stderr
    assert module.removesuffix(".py").replace("/", ".") in done.stdout


def test_an_interface_module_may_wire_any_app(copy):
    add_line(copy / "storages" / "api.py", "from indexing.writer import index_status  # noqa")
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
