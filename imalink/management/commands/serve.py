"""Start ImaLink's web server, a Celery worker and Celery beat in one foreground process group.

This is the last step of `make run`. One that dies is started again after a short back-off while the others
go on (imalink/supervise.py); Ctrl-C (or SIGTERM) stops all three cleanly.
"""

import os
import shlex
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from imalink.first_run import admin_password_file, choose_broker, ensure_admin_user
from imalink.supervise import Supervisor


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together (what `make run` starts)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("IMALINK_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("IMALINK_PORT", "8000")))
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")

    def handle(self, *args, host, port, web_workers, concurrency, **options):
        password = ensure_admin_user()
        if password:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created the admin user. Username: admin  Password: {password}\n"
                    f"(shown once; also kept in {admin_password_file()}, readable only by you)"
                )
            )
        broker_url, broker_line = choose_broker()
        self.stdout.write(broker_line)
        named = (
            "IMALINK_INSTANCE"
            if os.environ.get("IMALINK_INSTANCE", "").strip()
            else "derived from the database; set IMALINK_INSTANCE to name it"
        )
        self.stdout.write(
            f"Instance: {settings.IMALINK_INSTANCE} ({named}); Celery queue {settings.CELERY_TASK_DEFAULT_QUEUE}, "
            f"Redis keys under {settings.IMALINK_REDIS_PREFIX}"
        )
        self.stdout.write(f"ImaLink on http://localhost:{port}/ (admin at /admin/, API docs at /api/v1/docs)")
        self.stdout.flush()

        python = shlex.quote(sys.executable)
        # The instance as announced above, whatever the children's working folder makes of a relative database path.
        env = {
            **os.environ,
            "CELERY_BROKER_URL": broker_url,
            "IMALINK_INSTANCE": settings.IMALINK_INSTANCE,
            "PYTHONUNBUFFERED": "1",
        }
        # The gunicorn workers share their request metrics through files; last run's figures are not this run's.
        metrics_dir = Path(settings.VAR_DIR) / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        # exec: each process leads the session honcho starts it in, with no shell between (see imalink/priority.py).
        manager = Supervisor()
        manager.add_process(
            "web",
            f"exec {python} -m gunicorn imalink.wsgi:application --bind {shlex.quote(host)}:{port} "
            f"--workers {web_workers} --threads 8 --timeout 120 --graceful-timeout 10 --access-logfile - "
            f"--control-socket {shlex.quote(str(Path(settings.VAR_DIR) / 'gunicorn.ctl'))}",
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
            cwd=str(settings.BASE_DIR),
        )
        manager.add_process(
            "worker",
            f"exec {python} -m celery -A imalink worker --loglevel INFO "
            f"--queues {shlex.quote(queue)} --concurrency {concurrency}",
            env=env,
            cwd=str(settings.BASE_DIR),
        )
        manager.add_process(
            "beat",
            f"exec {python} -m celery -A imalink beat --loglevel INFO",
            env=env,
            cwd=str(settings.BASE_DIR),
        )
        manager.loop()
        # Stopped by Ctrl-C or SIGTERM (130, 143) is a clean stop, not a failure for make to report.
        sys.exit(0 if manager.returncode in (None, 0, 130, 143) else manager.returncode)
