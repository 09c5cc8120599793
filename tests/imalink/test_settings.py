"""Settings: the embedded defaults work with no configuration, and a bad value stops start-up clearly."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.DATABASES['default']['ENGINE'], settings.IMALINK_SYNC_WAIT)"
)


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


def test_processes_starting_together_share_one_complete_secret_key(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")
    }
    env.update(IMALINK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="imalink.settings")
    probe = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", probe], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    results = [(p.communicate(timeout=60), p.returncode) for p in starts]
    assert all(code == 0 for _, code in results), [err for (_, err), _ in results]
    keys = {out.strip() for (out, _), _ in results}
    assert len(keys) == 1 and len(keys.pop()) >= 32  # one key, never an empty file read half-written
    assert [p.name for p in (tmp_path / "var").iterdir() if p.name.startswith(".secret_key")] == []


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
        ("IMALINK_INSTANCE", "My Photos", "IMALINK_INSTANCE='My Photos' is not an instance name"),
        ("IMALINK_INSTANCE", "-x", "IMALINK_INSTANCE='-x' is not an instance name"),
        ("IMALINK_INSTANCE", "a" * 41, "is not an instance name: use 1 to 40 of a-z, 0-9, - and _"),
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
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert "DEBUG False" in result.stdout, result.stderr


INSTANCE_PROBE = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.IMALINK_INSTANCE, s.CELERY_TASK_DEFAULT_QUEUE, s.IMALINK_REDIS_PREFIX, "
    "s.CELERY_BROKER_TRANSPORT_OPTIONS.get('global_keyprefix'), "
    "s.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS['global_keyprefix'])"
)


def instance_of(tmp_path, **env) -> list[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMALINK_", "CELERY_", "DJANGO_SETTINGS")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    base.update(IMALINK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="imalink.settings", **env)
    result = subprocess.run(
        [sys.executable, "-c", INSTANCE_PROBE], cwd=REPO, env=base, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_an_instance_is_named_after_its_database_unless_imalink_instance_names_it(tmp_path):
    one = instance_of(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'one.sqlite3'}")
    name = one[0]
    assert name.startswith("db-") and len(name) == 11
    # Its queue and every Redis key (broker and results) follow from the name.
    assert one == [name, f"imalink-{name}", f"imalink:{name}:", f"imalink:{name}:", f"imalink:{name}:"]
    # Stable for one database (the default one under var/ too), different for another.
    assert instance_of(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'one.sqlite3'}") == one
    assert instance_of(tmp_path)[0] == instance_of(tmp_path)[0] != name
    assert instance_of(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'two.sqlite3'}")[0] != name
    postgres = [
        instance_of(tmp_path, DATABASE_URL=url)[0]
        for url in (
            "postgres://u@db.example:5432/photos",
            "postgres://u@db.example:5433/photos",
            "postgres://u@other.example:5432/photos",
            "postgres://u@db.example:5432/archive",
            "postgres://someone-else:pw@db.example:5432/photos",
        )
    ]
    assert len(set(postgres[:4])) == 4 and postgres[4] == postgres[0]  # the user is not part of the database's identity
    # A name of one's own wins; IMALINK_CELERY_QUEUE still sets the queue alone (the tests use it).
    assert (
        instance_of(tmp_path, IMALINK_INSTANCE="photos-2")
        == ["photos-2", "imalink-photos-2"] + ["imalink:photos-2:"] * 3
    )
    assert instance_of(tmp_path, IMALINK_INSTANCE="photos-2", IMALINK_CELERY_QUEUE="q1")[:3] == [
        "photos-2",
        "q1",
        "imalink:photos-2:",
    ]


def test_the_filesystem_broker_needs_no_key_prefix(tmp_path):
    name, queue, prefix, broker_prefix, result_prefix = instance_of(tmp_path, CELERY_BROKER_URL="filesystem://")
    assert broker_prefix == "None" and queue == f"imalink-{name}"
