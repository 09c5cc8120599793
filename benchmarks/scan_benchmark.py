"""Scan benchmark: a storage of N files (default 100,000) with their rows.

Times a scan with no changes and a scan with 1% of the files moved, beside a bare os.scandir walk that stats
every file of the same tree; reports the bytes each scan read, the scan's peak memory, and the time to write
every index of the storage. Prints a table and writes benchmarks/results/scan.json.

    .venv/bin/python benchmarks/scan_benchmark.py [--files 100000]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PER_SESSION = 1000


def bare_walk(top: str) -> int:
    count, stack = 0, [top]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count


def setup_django(work: Path, database_url: str | None = None):
    """Django on a fresh SQLite database under work/, or on database_url (an empty database the caller made)."""
    os.environ.update(
        IMALINK_VAR_DIR=str(work / "var"),
        IMALINK_ALLOWED_ROOTS=str(work),
        DJANGO_SETTINGS_MODULE="imalink.settings",
        LOG_LEVEL="WARNING",
    )
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def build(work: Path, files: int) -> str:
    """Files of 1-3 KB under photos/<session>/<folder>/, with one Photo and ImageFile row each."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import xxhash
    from django.db import transaction

    from imports.models import ImageFile, ImportSession, Photo
    from indexing.rewrite import storage_create

    base = work / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Bench")
    root = storage.full_path
    made = 0
    session_no = 0
    while made < files:
        session_no += 1
        session = ImportSession.objects.create(title=f"Session {session_no}", file_storage=storage)
        photos, rows = [], []
        for i in range(min(PER_SESSION, files - made)):
            n = made + i
            relative = f"photos/s{session_no:03d}/d{i % 20:02d}/IMG_{n:06d}.jpg"
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            data = n.to_bytes(8, "big") * (128 + n % 256)
            path.write_bytes(data)
            st = path.stat()
            checksum = xxhash.xxh3_128(data).hexdigest()
            photos.append(Photo(hothash=f"{n:032x}", has_hotpreview=False))
            rows.append((relative, len(data), st.st_mtime_ns, checksum))
        with transaction.atomic():
            created = Photo.objects.bulk_create(photos, batch_size=1000)
            ImageFile.objects.bulk_create(
                [
                    ImageFile(
                        photo=p,
                        import_session=session,
                        file_storage=storage,
                        relative_path=r[0],
                        original_filename=r[0].rsplit("/", 1)[1],
                        file_format="jpeg",
                        file_size=r[1],
                        mtime_ns=r[2],
                        checksum=r[3],
                    )
                    for p, r in zip(created, rows)
                ],
                batch_size=1000,
            )
        made += len(rows)
    return str(storage.storage_uuid)


def measure(work: Path, uuid: str, action: str) -> dict:
    """One measurement in a fresh process, so its peak memory is its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", action, "--work", str(work), "--uuid", uuid],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_measure(args):
    setup_django(Path(args.work))
    from indexing.scanner import scan_storage
    from indexing.writer import write_storage_indexes
    from storages.models import FileStorage

    storage = FileStorage.objects.get(storage_uuid=args.uuid)
    cold = None
    if args.measure == "scan-steady":
        # A worker process is long-lived: time the second of two scans, and report the first (cold) beside it.
        t = time.perf_counter()
        scan_storage(storage)
        cold = time.perf_counter() - t
        args.measure = "scan"
    started = time.perf_counter()
    if args.measure == "scan":
        report = scan_storage(storage)
        result = {
            "moved": len(report.moved_files),
            "missing": len(report.missing_files),
            "new": len(report.new_files),
            "bytes_read": report.bytes_read,
            "unchanged": report.unchanged_count,
        }
    else:
        for index in (storage.full_path / "imports").glob("*.json"):
            index.unlink()
        result = write_storage_indexes(storage)
        result = {"written": result["written"]}
    result["seconds"] = time.perf_counter() - started
    if cold is not None:
        result["cold_seconds"] = cold
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--measure")
    parser.add_argument("--work")
    parser.add_argument("--uuid")
    args = parser.parse_args()
    if args.measure:
        return run_measure(args)

    (REPO / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "var", prefix="bench-scan-") as tmp:
        work = Path(tmp)
        setup_django(work)
        print(f"Building a storage of {args.files:,} files with their rows ...", flush=True)
        t0 = time.perf_counter()
        uuid = build(work, args.files)
        print(f"  built in {time.perf_counter() - t0:.0f}s", flush=True)
        from storages.models import FileStorage

        root = FileStorage.objects.get(storage_uuid=uuid).full_path
        photos = str(root / "photos")
        bare_walk(photos)  # warm the cache, as the scans after it will have it warm
        walks = []
        for _ in range(3):
            t = time.perf_counter()
            count = bare_walk(photos)
            walks.append(time.perf_counter() - t)
        walk = min(walks)
        measure(work, uuid, "scan")  # the first scan ever records last_scan
        nochange = measure(work, uuid, "scan-steady")
        moved_bytes = 0
        target = root / "photos" / "reorganised"
        target.mkdir()
        for i, path in enumerate(sorted((root / "photos").rglob("IMG_*.jpg"))[::100]):
            moved_bytes += path.stat().st_size
            os.rename(path, target / f"moved_{i:05d}_{path.name}")
        moved = measure(work, uuid, "scan")
        indexes = measure(work, uuid, "indexes")

    rows = [
        ("bare os.scandir walk + stat", walk, None, "-", "-"),
        (
            "scan, no change (fresh process)",
            nochange["cold_seconds"],
            None,
            "-",
            f"{nochange['cold_seconds'] / walk:.2f}x walk",
        ),
        (
            "scan, no change (steady state)",
            nochange["seconds"],
            nochange["peak_rss_mb"],
            nochange["bytes_read"],
            f"{nochange['seconds'] / walk:.2f}x walk",
        ),
        (
            f"scan, 1% moved ({moved['moved']:,} files)",
            moved["seconds"],
            moved["peak_rss_mb"],
            moved["bytes_read"],
            f"moved bytes {moved_bytes:,}",
        ),
        ("write every index", indexes["seconds"], indexes["peak_rss_mb"], "-", f"{indexes['written']} files"),
    ]
    print(f"\nScan of {count:,} files on {os.cpu_count()} cores")
    print(f"{'run':34} {'seconds':>8} {'peak MB':>8} {'bytes_read':>12}  note")
    for name, seconds, peak, read, note in rows:
        print(f"{name:34} {seconds:8.2f} {(f'{peak:.0f}' if peak else '-'):>8} {str(read):>12}  {note}")
    figures = {
        "files": count,
        "bare_walk_s": walk,
        "scan_nochange": nochange,
        "scan_moved": {**moved, "moved_bytes": moved_bytes},
        "write_indexes": indexes,
        "targets": {
            "nochange_vs_walk": 2.0,
            "peak_rss_mb": 300,
            "write_indexes_s": 10,
            "moved_bytes_read_equals_moved_bytes": True,
        },
        "met": {
            "nochange_vs_walk": nochange["seconds"] <= 2 * walk,
            "peak_rss": max(nochange["peak_rss_mb"], moved["peak_rss_mb"]) <= 300,
            "write_indexes": indexes["seconds"] <= 10,
            "no_bytes_of_unchanged_files": nochange["bytes_read"] == 0 and moved["bytes_read"] == moved_bytes,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scan.json").write_text(json.dumps(figures, indent=2))
    print(f"\ntargets met: {figures['met']}\nFigures written to {RESULTS / 'scan.json'}")


if __name__ == "__main__":
    main()
