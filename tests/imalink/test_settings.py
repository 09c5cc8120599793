"""Settings: the embedded defaults work with no configuration, and a bad value stops start-up clearly."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'], settings.IMALINK_SYNC_WAIT)"


def start(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    base.update(IMALINK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="imalink.settings", **env)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=base, capture_output=True, text=True, timeout=60)


def test_it_starts_with_no_configuration_at_all(tmp_path):
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sqlite3 30.0" in result.stdout
    key = tmp_path / "var" / "secret_key"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    again = start(tmp_path)
    assert again.returncode == 0 and key.read_text() == key.read_text()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("IMALINK_SYNC_WAIT", "soon", "IMALINK_SYNC_WAIT='soon' is not a number"),
        ("IMALINK_SYNC_WAIT", "-1", "must be at least 0"),
        ("IMALINK_ALLOWED_ROOTS", "photos/here", "is not an absolute path"),
        ("DATABASE_URL", "mysql://root@localhost/x", "DATABASE_URL='mysql://root@localhost/x' must be a URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379' must be a URL"),
        ("SECRET_KEY", "short", "SECRET_KEY must be at least 32 characters"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is not a log level"),
    ],
)
def test_a_bad_value_stops_start_up_with_a_clear_message(tmp_path, name, value, message):
    result = start(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_debug_is_off_unless_asked_for(tmp_path):
    probe = "import django; django.setup(); from django.conf import settings; print('DEBUG', settings.DEBUG)"
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DATABASE_URL")}
    env.update(IMALINK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="imalink.settings")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert "DEBUG False" in result.stdout, result.stderr
