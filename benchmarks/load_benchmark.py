"""Load benchmark: 50 clients read from gunicorn, started as README's Production section shows (4 workers x 8
threads), over 100,000 photos whose indexes are written (half of them with a second copy on a backup storage, issue
17), while a Celery worker imports --import-files JPEGs (1,500) and scans the storage. Loopback only; the clients
run in their own process (asyncio + aiohttp), not in gunicorn's.

Two runs, each --seconds long, each with its own import and scan started one second in:
  users       each client requests, then thinks for a random 0.5-1.5 s (like Locust's wait_time), and again;
  saturation  each client requests again as soon as it has its answer (no think time): the server's ceiling.

Target: 0 errors and p95 <= 100 ms for every kind of read. Prints p50/p95/p99 per kind and overall, errors,
throughput and the jobs' outcome, and writes benchmarks/results/load.json
(load-postgres.json with --postgres URL, on a database of its own that it drops after).

    .venv/bin/python benchmarks/load_benchmark.py [--files 100000] [--clients 50] [--seconds 45]
"""

import argparse
import asyncio
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import pages_benchmark  # noqa: E402  (its add_backup_copies gives half the photos a second copy)
import scan_benchmark  # noqa: E402  (its builder makes the storage, files and rows)

RESULTS = REPO / "benchmarks" / "results"
MAX_REQUESTS = 200_000
TARGET_P95_MS = 100
THINK_SECONDS = (0.5, 1.5)
# README.md, Production: `gunicorn imalink.wsgi:application --bind 0.0.0.0:8000 --workers 4 --threads 8`
GUNICORN_ARGS = ["--workers", "4", "--threads", "8"]


def postgres_database(server_url: str) -> str:
    """A new, empty database on this PostgreSQL server for this run, dropped when the benchmark exits."""
    import atexit
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"imalink_bench_load_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def start_gunicorn(work: Path, port: int, env: dict) -> tuple[subprocess.Popen, Path]:
    """README's production web server (GUNICORN_ARGS) on 127.0.0.1:port, its log and control socket in work/."""
    log = work / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "imalink.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    command += [*GUNICORN_ARGS, "--control-socket", str(work / "gunicorn.ctl")]
    web = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return web, log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up (exit {proc.poll()}):\n{log.read_text(errors='replace')[-3000:]}")


def make_source(folder: Path, count: int, offset: int = 0) -> None:
    """Small distinct JPEGs (different pixels, so different hothashes; each run's offset gives it new ones)."""
    from PIL import Image

    folder.mkdir(parents=True)
    for n in range(offset, offset + count):
        image = Image.new("RGB", (320, 240), ((n * 37) % 256, (n * 11) % 256, (n * 73 + n // 256) % 256))
        image.paste(
            Image.frombytes("RGB", (96, 72), random.Random(n).randbytes(96 * 72 * 3)).resize((320, 240)), (0, 0)
        )
        image.save(folder / f"LOAD_{n:05d}.jpg", quality=85)


def percentile(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * (len(sorted_ms) - 1))))]


def summarise(samples: list[tuple[float, bool]], seconds: float) -> dict:
    times = sorted(ms for ms, _ in samples)
    return {
        "requests": len(samples),
        "errors": sum(1 for _, ok in samples if not ok),
        "rps": len(samples) / seconds,
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99),
        "max_ms": times[-1] if times else float("nan"),
    }


# --- the clients: their own process, one asyncio loop -------------------------------------------------


async def clients_run(plan: dict) -> dict:
    import aiohttp

    base, clients, seconds, think = plan["base"], plan["clients"], plan["seconds"], plan["think"]
    storage_uuid, hothashes, backup_uuid = plan["storage_uuid"], plan["hothashes"], plan["backup_uuid"]
    kinds = {
        "storage list": lambda rng: "/api/v1/file-storage/",
        "statistics": lambda rng: f"/api/v1/file-storage/{storage_uuid}/statistics",
        "index status": lambda rng: f"/api/v1/storage-index/status/{storage_uuid}",
        "hotpreview": lambda rng: f"/api/v1/photos/{rng.choice(hothashes)}/hotpreview",
        "photo detail (API)": lambda rng: f"/api/v1/photos/{rng.choice(hothashes)}",
        "photo page (HTML)": lambda rng: f"/photos/{rng.choice(hothashes)}/",
        # Copies across storages (issue 17); the photo detail above shows each photo's copies too.
        "under-protected list": lambda rng: f"/api/v1/photos/?copies_lt=2&page={rng.randint(1, 500)}",
        "retire-check": lambda rng: f"/api/v1/file-storage/{rng.choice([storage_uuid, backup_uuid])}/retire-check",
    }
    samples: dict[str, list[tuple[float, bool]]] = {name: [] for name in kinds}
    stamped: dict[str, list[tuple[float, float, bool]]] = {name: [] for name in kinds}  # (wall-clock start, ms, ok)
    errors: list[str] = []
    issued = 0
    headers = {"Authorization": f"Bearer {plan['token']}", "Cookie": f"{plan['cookie_name']}={plan['session_key']}"}
    timeout = aiohttp.ClientTimeout(total=30)
    started = time.monotonic()
    deadline = started + seconds

    async def user(http, seed: int):
        nonlocal issued
        rng = random.Random(seed)
        names = list(kinds)
        if think:
            await asyncio.sleep(rng.uniform(0, think[1]))  # users arrive spread out, not in one burst
        while time.monotonic() < deadline and issued < MAX_REQUESTS:
            issued += 1
            name = rng.choice(names)
            url = base + kinds[name](rng)
            t, wall = time.perf_counter(), time.time()
            try:
                async with http.get(url) as response:
                    body = await response.read()
                    ok, detail = response.status == 200, f"{response.status} {body[:160]!r}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            samples[name].append(((time.perf_counter() - t) * 1000, ok))
            stamped[name].append((wall, samples[name][-1][0], ok))
            if not ok and len(errors) < 20:
                errors.append(f"{name} {url}: {detail}")
            if think:
                await asyncio.sleep(rng.uniform(*think))

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as http:
        await asyncio.gather(*(user(http, plan["seed"] + i) for i in range(clients)))
    elapsed = time.monotonic() - started
    every = [s for v in samples.values() for s in v]
    return {
        "seconds": elapsed,
        "kinds": {name: summarise(v, elapsed) for name, v in samples.items()},
        "overall": summarise(every, elapsed),
        "error_samples": errors,
        "stamped": stamped,
    }


def clients_main() -> None:
    plan = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(clients_run(plan))))


# --- the run ----------------------------------------------------------------------------------------


def print_run(name: str, run: dict, args) -> None:
    print(
        f"\n{name}: {args.clients} clients for {run['seconds']:.0f} s, gunicorn {' '.join(GUNICORN_ARGS)}, "
        f"{args.files:,} photos, "
        f"while importing {args.import_files} JPEGs and scanning, on {os.cpu_count()} cores",
        flush=True,
    )
    print(
        f"{'kind':22} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for kind, r in [*run["kinds"].items(), ("overall", run["overall"])]:
        print(
            f"{kind:22} {r['requests']:9,} {r['errors']:7} {r['rps']:8.1f} {r['p50_ms']:8.1f} "
            f"{r['p95_ms']:8.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f}"
        )
    during = run["during_jobs"]
    print(f"-- of those, the requests sent while the import or the scan ran ({during['seconds']:.1f} s):")
    for kind, r in [*during["kinds"].items(), ("overall", during["overall"])]:
        print(
            f"{kind:22} {r['requests']:9,} {r['errors']:7} {r['rps']:8.1f} {r['p50_ms']:8.1f} "
            f"{r['p95_ms']:8.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f}"
        )
    for kind, job in run["jobs"].items():
        print(f"{kind} job: {job}")
    for error in run["error_samples"]:
        print(f"error: {error}")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--import-files", type=int, default=1500)
    parser.add_argument(
        "--postgres", metavar="URL", help="run on a new database on this PostgreSQL server (dropped after), not SQLite"
    )
    parser.add_argument("--runs", nargs="+", choices=["users", "saturation"], default=["users", "saturation"])
    parser.add_argument("--clients-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_process:
        return clients_main()
    began = time.monotonic()
    (REPO / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "var", prefix="bench-load-") as tmp:
        work = Path(tmp)
        database_url = postgres_database(args.postgres) if args.postgres else None
        scan_benchmark.setup_django(work, database_url)
        print(f"Building {args.files:,} photos with their files and rows ...", flush=True)
        storage_uuid = scan_benchmark.build(work, args.files)
        print("Copying every other photo to a backup storage (rows) ...", flush=True)
        backup_uuid = pages_benchmark.add_backup_copies(work, storage_uuid)

        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
        from django.contrib.sessions.backends.db import SessionStore
        from PIL import Image

        from imalink.models import ApiToken
        from imports.models import Photo
        from indexing.writer import write_storage_indexes
        from storages.models import FileStorage

        user = get_user_model().objects.create_superuser("bench", "", "bench-password-123")
        token = ApiToken.issue(user=user, name="load benchmark")[1]
        login = SessionStore()
        login.update(
            {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
        )
        login.create()
        # The builder's photos have no hotpreview; give a thousand of them one, as an import would.
        buffer = io.BytesIO()
        Image.new("RGB", (200, 150), (90, 120, 150)).save(buffer, "JPEG", quality=85)
        hothashes = list(Photo.objects.order_by("?").values_list("hothash", flat=True)[:1000])
        Photo.objects.filter(hothash__in=hothashes).update(hotpreview=buffer.getvalue(), has_hotpreview=True)
        # An archive in use has its indexes written (every import writes its own), so status has real work to do.
        print("Writing every index ...", flush=True)
        write_storage_indexes(FileStorage.objects.get(storage_uuid=storage_uuid))
        print(f"  ready after {time.monotonic() - began:.0f} s", flush=True)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        queue = f"imalink-load-{uuidlib.uuid4().hex[:8]}"
        prom = work / "prometheus"
        prom.mkdir()
        env = {
            **os.environ,
            "IMALINK_INSTANCE": settings.IMALINK_INSTANCE,
            "IMALINK_CELERY_QUEUE": queue,
            "PYTHONUNBUFFERED": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(prom),
        }
        worker_log = work / "worker.log"
        web, web_log = start_gunicorn(work, port, env)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "imalink",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                queue,
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"load-{uuidlib.uuid4().hex[:8]}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=worker_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        plan = {
            "base": base,
            "clients": args.clients,
            "seconds": args.seconds,
            "token": token,
            "session_key": login.session_key,
            "cookie_name": settings.SESSION_COOKIE_NAME,
            "storage_uuid": storage_uuid,
            "hothashes": hothashes,
            "backup_uuid": backup_uuid,
        }
        runs = {}
        try:
            wait_for(
                lambda: "ready." in worker_log.read_text(errors="replace"), "the Celery worker", worker, worker_log
            )
            workers = int(GUNICORN_ARGS[GUNICORN_ARGS.index("--workers") + 1])
            wait_for(
                lambda: web_log.read_text(errors="replace").count("Booting worker") >= workers, "gunicorn", web, web_log
            )
            warm_up(base, token, workers)
            for n, (name, think) in enumerate([("users", THINK_SECONDS), ("saturation", None)]):
                if name not in args.runs:
                    continue
                source = work / f"incoming-{name}"
                make_source(source, args.import_files, offset=n * args.import_files)
                print(f"Run '{name}': {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
                runs[name] = run_load({**plan, "think": think, "seed": n * 1000}, source)
                print_run(name, runs[name], args)
        finally:
            for proc in (web, worker):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)

    result = {
        "photos": args.files,
        "clients": args.clients,
        "seconds_per_run": args.seconds,
        "import_files": args.import_files,
        "server": "gunicorn imalink.wsgi:application "
        + " ".join(GUNICORN_ARGS)
        + " (README.md, Production), "
        + ("PostgreSQL" if args.postgres else "SQLite (WAL)"),
        "worker": "celery -A imalink worker (concurrency = cores), "
        f"IMALINK_WORKER_NICE={settings.IMALINK_WORKER_NICE} (imalink/priority.py)",
        "machine": f"{os.cpu_count()} cores shared by the clients, gunicorn, the Celery worker and the benchmark",
        "client_model": {
            "users": f"each client requests, then thinks {THINK_SECONDS[0]}-{THINK_SECONDS[1]} s (uniform), "
            "again; kinds chosen uniformly",
            "saturation": "each client requests again as soon as it has its answer (closed loop, no think time)",
        },
        "runs": runs,
        "target_p95_ms": TARGET_P95_MS,
        "total_seconds": time.monotonic() - began,
    }
    result["met"] = {name: run["met"] for name, run in runs.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("load-postgres.json" if args.postgres else "load.json")
    out.write_text(json.dumps(result, indent=2))
    print(
        f"\n0 errors and every p95 <= {TARGET_P95_MS} ms: {result['met']}\n"
        f"Whole benchmark {result['total_seconds']:.0f} s. Figures written to {out}"
    )


def warm_up(base: str, token: str, workers: int) -> None:
    """A server is up long before its users come: let each worker load Django's URLs once (not measured)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        return requests.get(
            f"{base}/api/v1/file-storage/", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ).status_code

    with ThreadPoolExecutor(workers * 4) as pool:
        codes = list(pool.map(one, range(workers * 4)))
    if set(codes) != {200}:
        raise SystemExit(f"the server's warm-up requests answered {codes}")


def run_load(plan: dict, source: Path) -> dict:
    base = plan["base"]
    api = requests.Session()
    api.trust_env = False
    api.headers["Authorization"] = f"Bearer {plan['token']}"
    api.headers["Connection"] = "close"  # a kept-alive connection gunicorn closed meanwhile would reset the job's POST
    created = api.post(
        f"{base}/api/v1/import-sessions/create",
        json={"title": f"Load import {source.name}", "file_storage_uuid": plan["storage_uuid"]},
        timeout=120,
    )
    created.raise_for_status()
    session_id = created.json()["data"]["id"]

    clients = subprocess.Popen(
        [sys.executable, __file__, "--clients-process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    clients.stdin.write(json.dumps(plan))
    clients.stdin.close()
    started = time.monotonic()
    time.sleep(1)  # the readers are under way before the background work starts
    jobs = {}
    # An overloaded server answering slowly is a finding: the jobs' own requests wait up to two minutes.
    answer = api.post(
        f"{base}/api/v1/import-sessions/{session_id}/import?wait=0", json={"source_path": str(source)}, timeout=120
    )
    jobs["import"] = {"posted_at_s": time.monotonic() - started, **answer.json()["data"]}
    answer = api.post(f"{base}/api/v1/storage-index/scan/{plan['storage_uuid']}?wait=0", timeout=120)
    jobs["scan"] = {"posted_at_s": time.monotonic() - started, **answer.json()["data"]}
    out = clients.stdout.read()
    if clients.wait():
        raise SystemExit(f"the clients' process failed ({clients.returncode})")
    run = json.loads(out)

    # The jobs must succeed; they are given up to three minutes more to finish if the load slowed them.
    deadline = time.monotonic() + 180
    for kind, posted in jobs.items():
        job_id = posted.get("job_id") or posted.get("id")
        while True:
            try:
                job = api.get(f"{base}/api/v1/jobs/{job_id}", timeout=60).json().get("data", {})
            except requests.RequestException as exc:
                job = {"id": job_id, "status": f"not readable: {type(exc).__name__}"}
            if job.get("status") in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(1)
        figures = {k: job.get(k) for k in ("id", "status", "started_at", "finished_at", "errors") if k in job}
        figures["posted_at_s"] = round(posted["posted_at_s"], 2)
        if job.get("started_at") and job.get("finished_at"):
            from datetime import datetime

            figures["ran_s"] = round(
                (
                    datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
                ).total_seconds(),
                2,
            )
        if kind == "import":
            figures["result"] = {k: (job.get("result") or {}).get(k) for k in ("imported", "duplicates", "failed")}
        jobs[kind] = figures
    run["jobs"] = jobs
    # The requests sent while the import or the scan was running: the condition the target is set for.
    from datetime import datetime

    stamped = run.pop("stamped")
    spans = [
        (datetime.fromisoformat(j["started_at"]).timestamp(), datetime.fromisoformat(j["finished_at"]).timestamp())
        for j in jobs.values()
        if j.get("started_at") and j.get("finished_at")
    ]
    begin, end = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0.0, 0.0)
    during = {name: [(ms, ok) for wall, ms, ok in v if begin <= wall <= end] for name, v in stamped.items()}
    window = max(end - begin, 1e-9)
    run["during_jobs"] = {
        "seconds": round(end - begin, 2),
        "kinds": {name: summarise(v, window) for name, v in during.items()},
        "overall": summarise([s for v in during.values() for s in v], window),
    }
    run["met"] = (
        run["overall"]["errors"] == 0
        and all(r["p95_ms"] <= TARGET_P95_MS for r in run["kinds"].values())
        and run["during_jobs"]["overall"]["errors"] == 0
        and all(r["p95_ms"] <= TARGET_P95_MS for r in run["during_jobs"]["kinds"].values() if r["requests"])
        and all(j.get("status") == "succeeded" for j in jobs.values())
    )
    return run


if __name__ == "__main__":
    main()
