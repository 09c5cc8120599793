"""What `make run` does before it starts the processes: make the admin user once, and pick a broker.

The embedded defaults mean a fresh machine needs no config file: SQLite and secrets under var/, and Redis
when one answers, else kombu's filesystem transport under var/.
"""

import logging
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

logger = logging.getLogger("imalink.first_run")

ADMIN_USERNAME = "admin"


def admin_password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin_password"


def ensure_admin_user() -> str | None:
    """Create the `admin` superuser on first start. Returns its new password, or None if it existed."""
    User = get_user_model()
    if User.objects.filter(username=ADMIN_USERNAME).exists():
        return None
    password = secrets.token_urlsafe(18)
    User.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
    path = admin_password_file()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    os.chmod(path, 0o600)
    return password


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def choose_broker(environ=os.environ) -> tuple[str, str]:
    """(broker_url, one line saying which) for the worker, beat and web processes.

    An explicit CELERY_BROKER_URL is used as given; Redis (REDIS_URL, or localhost) when it answers;
    otherwise kombu's filesystem transport under var/, which needs nothing installed.
    """
    if environ.get("CELERY_BROKER_URL"):
        return environ["CELERY_BROKER_URL"], f"Broker: {environ['CELERY_BROKER_URL']} (CELERY_BROKER_URL)."
    url = settings.REDIS_URL
    if redis_answers(url):
        return url, f"Broker: Redis at {url}."
    return (
        "filesystem://",
        f"Broker: no Redis at {url}; using the embedded filesystem broker in {Path(settings.VAR_DIR) / 'broker'}.",
    )
