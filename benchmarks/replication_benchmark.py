"""Replication and migration benchmark (issue 17): ImaLink's verified replication of ~2 GB of camera JPEGs beside
`rsync -a` of the same files, side by side in one run; and the migration of a 100,000-file storage.

Replication: the source storage holds copies of the corpus's camera JPEGs, each made unique by bytes appended
after its EOI, with their rows (no decoding: replication never decodes). Each round copies the whole storage into
a fresh target twice, once with replicate_storage (temp file, fsync, re-read with the page cache dropped, compare,
link, then the row and the indexes) and once with `rsync -a` of its photos/ folder; the order alternates between
rounds. Dropping the page cache between runs needs root, so both are measured warm (the source read from the
cache); rsync's writes stay in the page cache (it never fsyncs), so `rsync -a` followed by `sync` is shown too.

Migration: a storage of 100,000 files of 1-3 KB with one row each (scan_benchmark's build), migrated with
migrate_storage in a child process of its own, so its peak memory (ru_maxrss) is the migration's.

Prints a table and writes benchmarks/results/replication.json.

    .venv/bin/python benchmarks/replication_benchmark.py [--gb 2] [--rounds 3] [--files 100000]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scan_benchmark  # its Django set-up and its 100,000-file storage (this file runs from benchmarks/)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CORPUS = Path(os.environ.get("IMALINK_CORPUS", REPO.parent / "shared" / "corpus"))
MB = 1000 * 1000


def camera_jpegs() -> list[bytes]:
    """The corpus's camera JPEGs of at least 1 MB, each cut at its last EOI so that appended bytes follow it."""
    found = []
    for path in sorted((CORPUS / "jpeg/camera").iterdir()):
        data = path.read_bytes()
        if path.suffix.lower() in (".jpg", ".jpeg") and len(data) >= 1_000_000 and b"\xff\xd9" in data:
            found.append(data[: data.rindex(b"\xff\xd9") + 2])
    if not found:
        raise SystemExit(f"no camera JPEG of 1 MB or more in {CORPUS / 'jpeg/camera'}")
    return found


def build_source(work: Path, total_bytes: int):
    """The source storage: unique camera JPEGs up to total_bytes, 50 to a folder, with their rows."""
    import xxhash
    from django.db import transaction

    from imports.models import ImageFile, ImportSession, Photo
    from indexing.rewrite import storage_create
    from indexing.writer import write_storage_indexes

    base = work / "main"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Main SSD")
    session = ImportSession.objects.create(title="Camera", file_storage=storage)
    originals = camera_jpegs()
    photos, rows, written, n = [], [], 0, 0
    while written < total_bytes:
        body = originals[n % len(originals)] + f"imalink-bench-{n:08d}".encode()  # after EOI: still the same image
        relative = f"photos/2024/card{n // 50:03d}/DSC_{n:05d}.JPG"
        path = storage.full_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        checksum = xxhash.xxh3_128(body).hexdigest()
        photos.append(Photo(hothash=checksum, has_hotpreview=False))  # unique, and apart from scan_benchmark's
        rows.append((relative, len(body), path.stat().st_mtime_ns, checksum))
        written += len(body)
        n += 1
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
                for p, r in zip(created, rows, strict=True)
            ],
            batch_size=1000,
        )
    write_storage_indexes(storage)
    os.sync()
    return storage, n, written


def warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(1 << 20):
                    pass


def run_imalink(work: Path, source, label: str) -> float:
    from copies.replication import replicate_storage
    from indexing.rewrite import storage_create

    base = work / f"target-{label}"
    base.mkdir()
    target = storage_create(base_path=str(base), display_name=f"Backup {label}")
    started = time.perf_counter()
    report = replicate_storage(source=source, target=target)
    elapsed = time.perf_counter() - started
    assert report.failed_count == 0 and report.copied_files == report.total_files, report.failed[:3]
    shutil.rmtree(base)  # the benchmark's own copy: the disk holds one target at a time
    return elapsed


def run_rsync(work: Path, source, label: str, *, then_sync: bool) -> float:
    dest = work / f"rsync-{label}"
    started = time.perf_counter()
    subprocess.run(["rsync", "-a", f"{source.full_path / 'photos'}/", f"{dest}/"], check=True)
    if then_sync:
        os.sync()
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest)
    return elapsed


def replication(work: Path, gb: float, rounds: int) -> dict:
    source, files, size = build_source(work, int(gb * 1000 * MB))
    warm(source.full_path / "photos")
    times = {"imalink": [], "rsync": [], "rsync_sync": []}
    for r in range(rounds):
        order = ["imalink", "rsync", "rsync_sync"] if r % 2 == 0 else ["rsync_sync", "rsync", "imalink"]
        for kind in order:
            os.sync()  # the last run's dirty pages are written before this one starts, whichever it was
            if kind == "imalink":
                times[kind].append(run_imalink(work, source, f"{r}"))
            else:
                times[kind].append(run_rsync(work, source, f"{kind}-{r}", then_sync=kind == "rsync_sync"))
            print(f"  round {r + 1} {kind:>10}: {size / times[kind][-1] / MB:8.1f} MB/s", flush=True)
    median = {kind: statistics.median(t) for kind, t in times.items()}
    return {
        "files": files,
        "bytes": size,
        "rounds": rounds,
        "cache": "warm (no root to drop the page cache): the source is read from memory in every run",
        "seconds": times,
        "median_seconds": median,
        "median_mb_per_s": {kind: round(size / t / MB, 1) for kind, t in median.items()},
        "imalink_vs_rsync": round(median["rsync"] / median["imalink"], 3),
        "imalink_vs_rsync_then_sync": round(median["rsync_sync"] / median["imalink"], 3),
        "target": 0.8,
    }


def migration_child(uuid: str, new_base: str) -> None:
    """In a process of its own: the migration alone, and the process's peak memory."""
    from copies.migration import migrate_storage
    from storages.models import FileStorage

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    storage = FileStorage.objects.get(storage_uuid=uuid)
    started = time.perf_counter()
    report = migrate_storage(storage=storage, new_base_path=new_base)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        "RESULT "
        + json.dumps(
            {
                "seconds": round(elapsed, 2),
                "peak_rss_mb": round(peak / 1024, 1),
                "rss_before_mb": round(before / 1024, 1),
                "files_total": report.files_total,
                "bytes_total": report.bytes_total,
                "files_copied": report.files_copied,
                "database_files_checked": report.database_files_checked,
                "switched": report.switched,
            }
        )
    )


def migration(top: Path, work: Path, files: int) -> dict:
    uuid = scan_benchmark.build(work, files)
    new_base = work / "new-drive"
    new_base.mkdir()
    os.sync()
    child = subprocess.run(
        [sys.executable, __file__, "--migrate-child", str(top), uuid, str(new_base)],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in child.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["files_per_s"] = round(result["files_total"] / result["seconds"], 1)
    result["what"] = f"{files:,} files of 1-3 KB with one row each (scan_benchmark's storage), plus its indexes"
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--skip-migration", action="store_true")
    parser.add_argument("--migrate-child", nargs=3, metavar=("WORK", "UUID", "NEW_BASE"))
    args = parser.parse_args()
    if args.migrate_child:
        work, uuid, new_base = args.migrate_child
        scan_benchmark.setup_django(Path(work))  # the parent's work folder: its database and allowed root
        migration_child(uuid, new_base)
        return
    if not shutil.which("rsync"):
        raise SystemExit("rsync is not installed: the replication is measured against it")
    (REPO / "var" / "bench").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="replication-", dir=REPO / "var" / "bench"))
    try:
        scan_benchmark.setup_django(work)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(f"replication of {args.gb} GB of camera JPEGs, {args.rounds} rounds, warm:", flush=True)
        (work / "replication").mkdir()
        rep = replication(work / "replication", args.gb, args.rounds)
        mig = {}
        if not args.skip_migration:
            print(f"migration of a {args.files:,}-file storage:", flush=True)
            (work / "migration").mkdir()
            mig = migration(work, work / "migration", args.files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "replication": rep,
        "migration": mig,
    }
    print()
    print(f"| run | {rep['files']:,} files, {rep['bytes'] / MB:,.0f} MB | median MB/s | per round (s) |")
    print("|---|---|---|---|")
    for kind, name in (("imalink", "ImaLink replicate"), ("rsync", "rsync -a"), ("rsync_sync", "rsync -a; sync")):
        rounds = ", ".join(f"{t:.2f}" for t in rep["seconds"][kind])
        print(f"| {name} | {rep['median_seconds'][kind]:.2f} s | {rep['median_mb_per_s'][kind]} | {rounds} |")
    print(
        f"\nImaLink / rsync -a: {rep['imalink_vs_rsync']:.0%} (target 80%); "
        f"ImaLink / (rsync -a; sync): {rep['imalink_vs_rsync_then_sync']:.0%}"
    )
    if mig:
        print(
            f"\nmigration of {mig['files_total']:,} files ({mig['bytes_total'] / MB:,.0f} MB): {mig['seconds']:.1f} s, "
            f"{mig['files_per_s']:,.0f} files/s, peak RSS {mig['peak_rss_mb']} MB "
            f"(after Django's start {mig['rss_before_mb']} MB), switched: {mig['switched']}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replication.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
