"""Import benchmark: ImaLink's import of N distinct 12-megapixel JPEGs against a bare baseline.

The baseline does the same work in plain Python (read, xxh3-128, draft decode, 200 px thumbnail, JPEG encode,
fsync'ed copy) with a multiprocessing pool of the same size, with no Django and no Celery. ImaLink is measured
in-process (imports.pipeline.import_folder) and end to end (HTTP API -> Redis -> a real Celery worker).
Prints a table and writes the figures to benchmarks/results/import.json.

    .venv/bin/python benchmarks/import_benchmark.py [--files 500] [--processes 2]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("IMALINK_CORPUS", REPO.parent / "shared" / "corpus"))
BASE_PHOTO = CORPUS / "jpeg/camera/20240427_234934.JPG"  # Sony phone, 4032x3024 (12.2 MP)
RESULTS = REPO / "benchmarks" / "results"


def _make_one(args):
    index, folder = args
    from PIL import Image, ImageDraw

    with Image.open(BASE_PHOTO) as base:
        exif = base.info.get("exif")
        image = base.convert("RGB")
    draw = ImageDraw.Draw(image)
    x, y = (index * 97) % (image.width - 200), (index * 61) % (image.height - 200)
    draw.rectangle((x, y, x + 180, y + 180), fill=((index * 37) % 256, (index * 11) % 256, (index * 73) % 256))
    image.save(folder / f"DSC_{index:05d}.JPG", quality=90, exif=exif or b"")
    return index


def make_source(count: int, processes: int) -> Path:
    """N distinct 12 MP camera JPEGs (different pixels, so different checksums and hothashes), cached."""
    folder = REPO / "var" / "bench" / f"import-source-{count}"
    done = folder.with_name(folder.name + ".complete")
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with Pool(processes) as pool:
        for _ in pool.imap_unordered(_make_one, [(i, folder) for i in range(count)]):
            pass
    done.touch()
    return folder


def _baseline_one(args):
    source, dest_dir = args
    import xxhash
    from PIL import Image

    digest = xxhash.xxh3_128()
    with open(source, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    with Image.open(source) as image:
        image.draft("RGB", (200, 200))
        image = image.convert("RGB")
        image.thumbnail((200, 200))
        xxhash.xxh3_128(image.tobytes()).hexdigest()
        from io import BytesIO

        image.save(BytesIO(), "JPEG", quality=85)
    dest = Path(dest_dir) / Path(source).name
    with open(source, "rb") as src, open(dest, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    check = xxhash.xxh3_128()
    with open(dest, "rb") as handle:
        while chunk := handle.read(1 << 20):
            check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()
    return os.path.getsize(source)


def run_baseline(source: Path, processes: int, scratch: Path) -> dict:
    dest = scratch / "baseline"
    dest.mkdir()
    files = sorted(p for p in source.iterdir() if p.suffix == ".JPG")
    started = time.perf_counter()
    with Pool(processes) as pool:
        total = sum(pool.imap_unordered(_baseline_one, [(str(f), str(dest)) for f in files], chunksize=4))
    elapsed = time.perf_counter() - started
    return {"files": len(files), "seconds": elapsed, "bytes": total}


def peak_rss_mb(pids) -> float:
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1])
        except OSError:
            pass
    return peak / 1024


def django_setup(scratch: Path):
    os.environ.update(
        IMALINK_VAR_DIR=str(scratch / "var"),
        IMALINK_ALLOWED_ROOTS=f"{REPO / 'var' / 'bench'}:{scratch}",
        DJANGO_SETTINGS_MODULE="imalink.settings",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def new_session(scratch: Path, name: str):
    from imports.models import ImportSession
    from indexing.rewrite import storage_create

    base = scratch / name
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name=name)
    return ImportSession.objects.create(title=name, file_storage=storage)


def run_in_process(source: Path, threads: int, scratch: Path) -> dict:
    from indexing.rewrite import import_folder

    session = new_session(scratch, "inprocess")
    started = time.perf_counter()
    report = import_folder(session_id=session.pk, source_path=str(source), threads=threads)
    elapsed = time.perf_counter() - started
    assert report.imported == report.total and report.failed == 0, report.failures[:3]
    return {
        "files": report.imported,
        "seconds": elapsed,
        "bytes": report.bytes_copied,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_end_to_end(source: Path, processes: int, scratch: Path) -> dict | None:
    """POST the import through the API and let a real Celery worker (concurrency N) do it."""
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from imalink.models import ApiToken
    from jobs.models import Job

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception:
        print(f"(no Redis at {url}: the end-to-end row is skipped)")
        return None
    queue = f"imalink-bench-{os.getpid()}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    env = {
        **os.environ,
        "IMALINK_INSTANCE": settings.IMALINK_INSTANCE,
        "IMALINK_CELERY_QUEUE": queue,
        "CELERY_BROKER_URL": url,
        "IMALINK_IMPORT_THREADS": str(processes),
    }
    log = open(scratch / "worker.log", "wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imalink",
            "worker",
            "-Q",
            queue,
            "-c",
            str(processes),
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in (scratch / "worker.log").read_bytes():
            assert time.monotonic() < deadline and worker.poll() is None, "worker did not start"
            time.sleep(0.2)
        user = get_user_model().objects.create_superuser("bench", "", "bench-password-123")
        token = ApiToken.issue(user=user)[1]
        session = new_session(scratch, "endtoend")
        client = Client(headers={"Authorization": f"Bearer {token}"}, SERVER_NAME="localhost")
        started = time.perf_counter()
        response = client.post(
            f"/api/v1/import-sessions/{session.pk}/import?wait=0",
            {"source_path": str(source)},
            content_type="application/json",
        )
        job_id = response.json()["data"]["job_id"]
        while not (job := Job.objects.get(pk=job_id)).is_finished:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        assert job.status == "succeeded", job.errors
        pids = [worker.pid] + [
            int(p)
            for p in subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
        ]
        peak = max(peak_rss_mb([p]) for p in pids)
        return {
            "files": job.result["imported"],
            "seconds": elapsed,
            "bytes": job.result["bytes_copied"],
            "peak_rss_mb": peak,
        }
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    print(f"Preparing {args.files} distinct 12 MP JPEGs from {BASE_PHOTO.name} ...", flush=True)
    source = make_source(args.files, args.processes)
    rows = {}
    with tempfile.TemporaryDirectory(dir=REPO / "var" / "bench") as tmp:
        scratch = Path(tmp)
        subprocess.run(["sync"])
        rows["baseline (plain Python, pool)"] = run_baseline(source, args.processes, scratch)
        django_setup(scratch)
        rows["ImaLink import_folder (in-process)"] = run_in_process(source, args.processes, scratch)
        e2e = run_end_to_end(source, args.processes, scratch)
        if e2e:
            rows["ImaLink API + Celery worker"] = e2e

    baseline_fps = rows["baseline (plain Python, pool)"]["files"] / rows["baseline (plain Python, pool)"]["seconds"]
    print(f"\nImport of {args.files} x 12 MP JPEGs, {args.processes} processes, {os.cpu_count()} cores")
    print(f"{'run':38} {'files/s':>8} {'MB/s':>8} {'peak MB':>8} {'% of baseline':>14}")
    figures = {"files": args.files, "processes": args.processes, "cores": os.cpu_count(), "runs": {}}
    for name, r in rows.items():
        fps = r["files"] / r["seconds"]
        mbps = r["bytes"] / r["seconds"] / 1e6
        share = 100 * fps / baseline_fps
        peak = r.get("peak_rss_mb")
        print(f"{name:38} {fps:8.1f} {mbps:8.1f} {(f'{peak:.0f}' if peak else '-'):>8} {share:13.0f}%")
        figures["runs"][name] = {**r, "files_per_s": fps, "mb_per_s": mbps, "percent_of_baseline": share}
    figures["targets"] = {"files_per_s_end_to_end": 25, "percent_of_baseline": 70}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "import.json").write_text(json.dumps(figures, indent=2))
    print(f"\nFigures written to {RESULTS / 'import.json'}")


if __name__ == "__main__":
    main()
