"""ImaLink settings: one module, driven by environment variables.

Every value goes through a typed helper that refuses bad input, so a typo stops start-up with a clear
message instead of surfacing later as odd behaviour.
"""

import hashlib
import ipaddress
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use true or false.")


def env_number(name: str, default: float, *, minimum: float = 0, integer: bool = False):
    value = _env(name)
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ImproperlyConfigured(f"{name}={value!r} is not {kind}.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}.")
    return number


def env_list(name: str, default: list[str], *, separator: str = ",") -> list[str]:
    value = _env(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(separator) if item.strip()]


def env_paths(name: str, default: list[Path]) -> list[Path]:
    """Absolute folders, separated by os.pathsep (':'), like PATH."""
    paths = []
    for item in env_list(name, [str(p) for p in default], separator=os.pathsep):
        if "\x00" in item or not os.path.isabs(item):
            raise ImproperlyConfigured(f"{name}: {item!r} is not an absolute path.")
        paths.append(Path(os.path.normpath(item)))
    if not paths:
        raise ImproperlyConfigured(f"{name} names no folder.")
    return paths


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    value = _env(name) or default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise ImproperlyConfigured(f"{name}={value!r} must be a URL starting with one of: {', '.join(schemes)}.")
    return value


def env_emails(name: str) -> list[str]:
    """Comma-separated e-mail addresses; none when unset."""
    addresses = env_list(name, [])
    for address in addresses:
        local, _, domain = address.rpartition("@")
        if not local or "." not in domain or any(c.isspace() for c in address):
            raise ImproperlyConfigured(f"{name}: {address!r} is not an e-mail address.")
    return addresses


VAR_DIR = Path(_env("IMALINK_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)
(VAR_DIR / "static").mkdir(exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/ (mode 0600)."""
    value = _env("SECRET_KEY")
    if value is not None:
        if len(value) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
        return value
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        # Written whole under a temporary name, then linked into place: processes starting together (the two test
        # passes, say) either make the one key or read it complete, never an empty file another is still writing.
        temp = VAR_DIR / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, key_file)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temp.unlink()
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind HTTPS (directly or through a proxy that sets X-Forwarded-Proto), IMALINK_HTTPS=true turns on the
# settings `manage.py check --deploy` asks for: redirect to HTTPS, secure cookies and HSTS.
IMALINK_HTTPS = env_bool("IMALINK_HTTPS", False)
if IMALINK_HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_number("IMALINK_HSTS_SECONDS", 31536000, integer=True)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "ninja",
    "django_celery_beat",
    "axes",
    "imalink",
    "jobs",
    "storages",
    "imports",
    "indexing",
    "copies",
]

MIDDLEWARE = [
    "imalink.metrics.MetricsMiddleware",  # first, so the response times cover every other middleware
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # early, so responses cut short by later middleware get the policy too
    # a body over IMALINK_MAX_REQUEST_BYTES: 413 before it is read (with the headers above)
    "imalink.limits.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it turns a refused login into the lockout page
]

ROOT_URLCONF = "imalink.urls"
WSGI_APPLICATION = "imalink.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'imalink.sqlite3'}",
    schemes=("sqlite", "postgres", "postgresql", "pgsql"),
)
try:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A busy timeout and WAL let the web server and the workers share one SQLite file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA mmap_size=1073741824;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    _test_name = _env("IMALINK_TEST_SQLITE")
    if _test_name:
        # Tests that start a real worker or server need the test database in a file they can share.
        DATABASES["default"]["TEST"] = {"NAME": _test_name}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = _env("TIME_ZONE") or "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

# --- Login throttling (django-axes) -------------------------------------------------------------
# After IMALINK_LOGIN_FAILURE_LIMIT failed logins for one username from one address, that pair is refused (429,
# even with the right password) for IMALINK_LOGIN_COOLOFF_MINUTES after the last failure; a success resets the
# count. An administrator lifts a lockout in the admin (Axes > Access attempts) or with
# `manage.py axes_reset_username <name>`. Covers /accounts/login/ and /admin/login/ alike.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_number("IMALINK_LOGIN_FAILURE_LIMIT", 5, minimum=1, integer=True)
IMALINK_LOGIN_COOLOFF_MINUTES = env_number("IMALINK_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_COOLOFF_TIME = IMALINK_LOGIN_COOLOFF_MINUTES / 60  # axes reads a float as hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_CALLABLE = "imalink.login.lockout_response"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Instance -----------------------------------------------------------------------------------
# Instances on one host share one Redis; each keeps to its own queue and keys. Its name is IMALINK_INSTANCE, else
# one derived from the database it serves, so two checkouts (or a test instance beside a real one) never take
# each other's jobs.
INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def instance_name(database: dict) -> str:
    """ "db-" and a short stable hash of the database's identity: engine, host, port and name
    (a SQLite file's full path)."""
    name = str(database.get("NAME") or "")
    if database["ENGINE"] == "django.db.backends.sqlite3" and name and not name.startswith(("file:", ":memory:")):
        name = str(Path(name).resolve())
    identity = "\0".join([database["ENGINE"], str(database.get("HOST") or ""), str(database.get("PORT") or ""), name])
    return "db-" + hashlib.sha256(identity.encode()).hexdigest()[:8]


IMALINK_INSTANCE = _env("IMALINK_INSTANCE") or instance_name(DATABASES["default"])
if not INSTANCE_NAME.fullmatch(IMALINK_INSTANCE):
    raise ImproperlyConfigured(
        f"IMALINK_INSTANCE={IMALINK_INSTANCE!r} is not an instance name: "
        "use 1 to 40 of a-z, 0-9, - and _, starting with a letter or digit."
    )
# Everything the instance keeps in Redis (broker queues, broadcasts, results, later locks) is under this prefix.
IMALINK_REDIS_PREFIX = f"imalink:{IMALINK_INSTANCE}:"

# --- Celery -------------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "redis://localhost:6379/0", schemes=("redis", "rediss", "unix"))
# `make run` points the broker at kombu's filesystem transport when no Redis answers.
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", REDIS_URL, schemes=("redis", "rediss", "unix", "filesystem"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
    }
else:
    # kombu prefixes every key, list and pub/sub channel it uses, so the queues and the broadcasts (revoke,
    # inspect, ping) of one instance are invisible to another. The filesystem broker is under var/ already.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": IMALINK_REDIS_PREFIX}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": IMALINK_REDIS_PREFIX}  # if a Redis result backend is set
CELERY_TASK_DEFAULT_QUEUE = _env("IMALINK_CELERY_QUEUE") or f"imalink-{IMALINK_INSTANCE}"  # the variable is for tests
CELERY_TASK_IGNORE_RESULT = True  # jobs keep their own state in the database (jobs.Job)
# A job's message is acknowledged as the job starts and never delivered again: its row, not the broker, carries
# recovery from a dead worker (jobs/services.py), as it must for a job a management command runs with no message.
# Late acks would also let Redis hand a long job of a live worker to a second one after the visibility timeout.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE

# --- ImaLink ------------------------------------------------------------------------------------
IMALINK_ALLOWED_ROOTS = env_paths("IMALINK_ALLOWED_ROOTS", [Path.home()])
IMALINK_SYNC_WAIT = env_number("IMALINK_SYNC_WAIT", 30.0)
# Pixel limit per image: above it, or implausibly many pixels for the file's size, an image is a decompression bomb.
IMALINK_MAX_PIXELS = env_number("IMALINK_MAX_PIXELS", 250_000_000, minimum=1, integer=True)
# The largest request body any route accepts (2.5 MB, Django's own default);
# a bigger one answers 413 (imalink/limits.py).
IMALINK_MAX_REQUEST_BYTES = env_number("IMALINK_MAX_REQUEST_BYTES", 2_621_440, minimum=1, integer=True)
DATA_UPLOAD_MAX_MEMORY_SIZE = IMALINK_MAX_REQUEST_BYTES
# Replication and migration copy this many files at once (issue 17). The work is the drives' (write, fsync, read
# back with the cache dropped), not the CPU's: on the project's 2-core machine 2, 4, 8 and 16 threads gave 120-140,
# 160-190, 205-250 and 270-320 MB/s for camera JPEGs (benchmarks/replication_benchmark.py). A spinning drive may
# want fewer; none is slower than one thread.
IMALINK_COPY_THREADS = env_number("IMALINK_COPY_THREADS", 16, minimum=1, integer=True)
IMALINK_IMPORT_THREADS = env_number("IMALINK_IMPORT_THREADS", max(2, os.cpu_count() or 2), minimum=1, integer=True)
# Health check: a storage with less free space than this is "low on space" (the seed's threshold is 1 GB);
# photos kept in fewer storages than IMALINK_MIN_COPIES are reported (1: never). Unset, it is 2 once a second
# storage exists, and 1 before (issue 17; copies/counting.py min_copies()).
IMALINK_LOW_SPACE_GB = env_number("IMALINK_LOW_SPACE_GB", 1.0)
IMALINK_MIN_COPIES = env_number("IMALINK_MIN_COPIES", None, minimum=1, integer=True)
# The monthly full validation runs in nightly slices of at most this many seconds per storage.
IMALINK_VALIDATION_BUDGET_S = env_number("IMALINK_VALIDATION_BUDGET_S", 3 * 3600.0, minimum=1)
# How long a job waits for another job's lock on the same storage before it gives up with 409.
IMALINK_LOCK_WAIT = env_number("IMALINK_LOCK_WAIT", 600.0)
# A running job's process marks it alive every IMALINK_JOB_HEARTBEAT_S seconds. A job whose process is gone, or
# that has not been marked for IMALINK_JOB_STALE_S seconds, is shown failed (worker_lost) at once and written so
# by the sweep (a worker's start, beat, the next claim); a queued job whose message has waited that long is sent
# to the broker again (a Redis restart loses queued messages).
IMALINK_JOB_HEARTBEAT_S = env_number("IMALINK_JOB_HEARTBEAT_S", 15.0, minimum=0.1)
IMALINK_JOB_STALE_S = env_number("IMALINK_JOB_STALE_S", 120.0, minimum=1)
if IMALINK_JOB_STALE_S < 3 * IMALINK_JOB_HEARTBEAT_S:
    raise ImproperlyConfigured("IMALINK_JOB_STALE_S must be at least three times IMALINK_JOB_HEARTBEAT_S.")
# The Celery worker's nice value (0-19; 0 leaves it alone): imports and scans give way to the web's readers.
IMALINK_WORKER_NICE = env_number("IMALINK_WORKER_NICE", 10, minimum=0, integer=True)
if IMALINK_WORKER_NICE > 19:
    raise ImproperlyConfigured("IMALINK_WORKER_NICE must be at most 19.")
IMALINK_VERSION = "0.1.0"

# --- Alerts -------------------------------------------------------------------------------------
# After each health report, issues that opened or cleared are e-mailed to IMALINK_ALERT_EMAILS (comma list)
# and posted as JSON to IMALINK_ALERT_WEBHOOK; both are off when unset.
IMALINK_ALERT_EMAILS = env_emails("IMALINK_ALERT_EMAILS")
IMALINK_ALERT_WEBHOOK = (
    env_url("IMALINK_ALERT_WEBHOOK", "", schemes=("http", "https")) if _env("IMALINK_ALERT_WEBHOOK") else None
)
if IMALINK_ALERT_WEBHOOK and not urlsplit(IMALINK_ALERT_WEBHOOK).hostname:
    raise ImproperlyConfigured(f"IMALINK_ALERT_WEBHOOK={IMALINK_ALERT_WEBHOOK!r} names no host.")
# Django's SMTP backend; a timeout so a dead mail server cannot hang the health check.
EMAIL_HOST = _env("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_number("EMAIL_PORT", 25, minimum=1, integer=True)
EMAIL_HOST_USER = _env("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _env("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_number("EMAIL_TIMEOUT", 10.0, minimum=1)
DEFAULT_FROM_EMAIL = _env("DEFAULT_FROM_EMAIL") or "imalink@localhost"
# Password reset by e-mail is offered only when a mail server is named: the reset pages answer 404 otherwise.
IMALINK_MAIL_CONFIGURED = _env("EMAIL_HOST") is not None

# /metrics (Prometheus): open to a client that sends "Authorization: Bearer <IMALINK_METRICS_TOKEN>", or whose
# address is in IMALINK_METRICS_ALLOW ("none": token only). Behind a reverse proxy on this host every client
# comes from 127.0.0.1, so there set the list to "none" and use the token.
IMALINK_METRICS_TOKEN = _env("IMALINK_METRICS_TOKEN") or ""
if IMALINK_METRICS_TOKEN and len(IMALINK_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("IMALINK_METRICS_TOKEN must be at least 16 characters long.")


def env_networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    items = env_list(name, default)
    if [item.lower() for item in items] == ["none"]:
        return []
    try:
        return [ipaddress.ip_network(item) for item in items]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc} (use addresses or networks like 10.0.0.0/8, or none).") from None


IMALINK_METRICS_ALLOW = env_networks("IMALINK_METRICS_ALLOW", ["127.0.0.1", "::1"])

LOG_LEVEL = (_env("LOG_LEVEL") or "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a log level.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"imalink": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}},
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
    SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Content-Security-Policy (django-csp) -------------------------------------------------------
# Pages load only ImaLink's own static files: no inline scripts, styles or handlers, no eval, no plugins, no
# framing. So templates carry no style="..." or <script> bodies (bars are <progress>/<meter>), and
# templates/admin/djcelery/ replaces django-celery-beat's inline script; tests/imalink/test_csp.py checks. The one
# exception is scoped to its view: the API's Swagger page also allows data: images (imalink/api.py says why).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
