"""Load benchmark: 50 concurrent clients read from gunicorn (2 workers x 8 threads) over 100,000 photos while a
Celery worker imports ~200 JPEGs and scans the storage. Loopback only.

Target: 0 errors and p95 <= 100 ms for every kind of read. Prints p50/p95/p99 per kind and overall, errors and
throughput, and writes benchmarks/results/load.json.

    .venv/bin/python benchmarks/load_benchmark.py [--files 100000] [--clients 50] [--seconds 30]
"""

import argparse
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import scan_benchmark  # noqa: E402  (its builder makes the storage, files and rows)

RESULTS = REPO / "benchmarks" / "results"
MAX_REQUESTS = 200_000
TARGET_P95_MS = 100


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


def make_source(folder: Path, count: int) -> None:
    """Small distinct JPEGs (different pixels, so different hothashes)."""
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (320, 240), ((i * 37) % 256, (i * 11) % 256, (i * 73) % 256)).save(folder / f"LOAD_{i:04d}.jpg", quality=85)


def percentile(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * (len(sorted_ms) - 1))))]


def summarise(samples: list[tuple[float, bool]], seconds: float) -> dict:
    times = sorted(ms for ms, _ in samples)
    return {
        "requests": len(samples), "errors": sum(1 for _, ok in samples if not ok), "rps": len(samples) / seconds,
        "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "p99_ms": percentile(times, 99),
        "max_ms": times[-1] if times else float("nan"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--import-files", type=int, default=200)
    args = parser.parse_args()
    (REPO / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "var", prefix="bench-load-") as tmp:
        work = Path(tmp)
        scan_benchmark.setup_django(work)
        print(f"Building {args.files:,} photos with their files and rows ...", flush=True)
        storage_uuid = scan_benchmark.build(work, args.files)
        source = work / "incoming"
        make_source(source, args.import_files)

        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
        from django.contrib.sessions.backends.db import SessionStore
        from PIL import Image

        from imalink.models import ApiToken
        from imports.models import Photo

        user = get_user_model().objects.create_superuser("bench", "", "bench-password-123")
        token = ApiToken.issue(user=user, name="load benchmark")[1]
        login = SessionStore()
        login.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend", HASH_SESSION_KEY: user.get_session_auth_hash()})
        login.create()
        # The builder's photos have no hotpreview; give a thousand of them one, as an import would.
        buffer = io.BytesIO()
        Image.new("RGB", (200, 150), (90, 120, 150)).save(buffer, "JPEG", quality=85)
        hothashes = list(Photo.objects.order_by("?").values_list("hothash", flat=True)[:1000])
        Photo.objects.filter(hothash__in=hothashes).update(hotpreview=buffer.getvalue(), has_hotpreview=True)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        queue = f"imalink-load-{uuidlib.uuid4().hex[:8]}"
        prom = work / "prometheus"
        prom.mkdir()
        env = {**os.environ, "IMALINK_CELERY_QUEUE": queue, "PYTHONUNBUFFERED": "1", "PROMETHEUS_MULTIPROC_DIR": str(prom)}
        web_log, worker_log = work / "gunicorn.log", work / "worker.log"
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "imalink.wsgi:application", "--workers", "2", "--threads", "8", "--bind", f"127.0.0.1:{port}"],
            cwd=REPO, env=env, stdout=web_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "imalink", "worker", "--loglevel", "INFO", "--queues", queue, "--concurrency", "2",
             "--without-gossip", "--without-mingle", "--hostname", f"load-{uuidlib.uuid4().hex[:8]}@%h"],
            cwd=REPO, env=env, stdout=worker_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for(lambda: "ready." in worker_log.read_text(errors="replace"), "the Celery worker", worker, worker_log)
            wait_for(lambda: "Listening at" in web_log.read_text(errors="replace"), "gunicorn", web, web_log)
            result = run_load(args, base, token, login.session_key, settings.SESSION_COOKIE_NAME, storage_uuid, hothashes, source)
        finally:
            for proc in (web, worker):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
        result["photos"] = args.files

    print(f"\n{args.clients} clients for {result['seconds']:.0f} s against gunicorn (2 workers x 8 threads), {args.files:,} photos, "
          f"while importing {args.import_files} JPEGs and scanning on {os.cpu_count()} cores")
    print(f"{'kind':22} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in [*result["kinds"].items(), ("overall", result["overall"])]:
        print(f"{name:22} {r['requests']:9,} {r['errors']:7} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f}")
    for kind, job in result["jobs"].items():
        print(f"{kind} job: {job}")
    for error in result["error_samples"]:
        print(f"error: {error}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(result, indent=2))
    print(f"\n0 errors and every p95 <= {TARGET_P95_MS} ms: {result['met']}\nFigures written to {RESULTS / 'load.json'}")


def run_load(args, base, token, session_key, cookie_name, storage_uuid, hothashes, source) -> dict:
    api = requests.Session()
    api.trust_env = False
    api.headers["Authorization"] = f"Bearer {token}"
    created = api.post(f"{base}/api/v1/import-sessions/create", json={"title": "Load import", "file_storage_uuid": storage_uuid}, timeout=30)
    created.raise_for_status()
    session_id = created.json()["data"]["id"]

    kinds = {
        "storage list": lambda: "/api/v1/file-storage/",
        "statistics": lambda: f"/api/v1/file-storage/{storage_uuid}/statistics",
        "index status": lambda: f"/api/v1/storage-index/status/{storage_uuid}",
        "hotpreview": lambda: f"/api/v1/photos/{random.choice(hothashes)}/hotpreview",
        "photo detail (API)": lambda: f"/api/v1/photos/{random.choice(hothashes)}",
        "photo page (HTML)": lambda: f"/photos/{random.choice(hothashes)}/",
    }
    samples: dict[str, list[tuple[float, bool]]] = {name: [] for name in kinds}
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    issued = [0]

    def client(seed: int):
        rng = random.Random(seed)
        http = requests.Session()
        http.trust_env = False
        http.headers["Authorization"] = f"Bearer {token}"
        http.cookies.set(cookie_name, session_key)
        names = list(kinds)
        while not stop.is_set():
            with lock:
                if issued[0] >= MAX_REQUESTS:
                    return
                issued[0] += 1
            name = rng.choice(names)
            url = base + kinds[name]()
            started = time.perf_counter()
            try:
                response = http.get(url, timeout=30)
                ok, detail = response.status_code == 200, f"{response.status_code} {response.text[:160]!r}"
            except requests.RequestException as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                samples[name].append((elapsed, ok))
                if not ok and len(errors) < 20:
                    errors.append(f"{name} {url}: {detail}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(1)  # the readers are at full speed before the background work starts
    jobs = {}
    answer = api.post(f"{base}/api/v1/import-sessions/{session_id}/import?wait=0", json={"source_path": str(source)}, timeout=30)
    jobs["import"] = answer.json()["data"]
    answer = api.post(f"{base}/api/v1/storage-index/scan/{storage_uuid}?wait=0", timeout=30)
    jobs["scan"] = answer.json()["data"]
    time.sleep(max(0, args.seconds - (time.monotonic() - started)))
    stop.set()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started

    job_figures = {}
    for kind, data in jobs.items():
        job_id = data.get("job_id") or data.get("id")
        try:
            job = api.get(f"{base}/api/v1/jobs/{job_id}", timeout=60).json().get("data", {}) if job_id else data
        except requests.RequestException as exc:  # an overloaded server is a finding, not a reason to lose the figures
            job = {"id": job_id, "error": f"status not readable: {type(exc).__name__}"}
        job_figures[kind] = {k: job.get(k) for k in ("id", "status", "started_at", "finished_at", "error") if k in job}

    all_samples = [s for v in samples.values() for s in v]
    result = {
        "clients": args.clients, "seconds": seconds,
        "kinds": {name: summarise(v, seconds) for name, v in samples.items()},
        "overall": summarise(all_samples, seconds),
        "jobs": job_figures, "error_samples": errors, "target_p95_ms": TARGET_P95_MS,
    }
    result["met"] = result["overall"]["errors"] == 0 and all(r["p95_ms"] <= TARGET_P95_MS for r in result["kinds"].values())
    return result


if __name__ == "__main__":
    main()
