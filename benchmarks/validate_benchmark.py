"""Validation benchmark: a full validation of ~2 GB of camera JPEGs beside plainly reading the same bytes.

The storage is N copies (default 750, 2.1 GB) of a 2.8 MB corpus camera JPEG, each with distinct trailing bytes, with
their rows; it is built once under var/bench/validate-<N>/ and reused. Times, with a warm page cache, Python
reading every file in 1 MiB chunks (read(), and readinto() one reused buffer) and validate_storage(mode="full")
told to use the cache; then, after dropping the caches (root only), the plain read and the validation as it
runs in production (it drops each file's cached pages so it hashes what the drive holds).
Prints a table and writes benchmarks/results/validate.json.

    .venv/bin/python benchmarks/validate_benchmark.py [--files 600]
"""

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import scan_benchmark  # its Django set-up (this file runs from benchmarks/, like the others)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CORPUS = Path(os.environ.get("IMALINK_CORPUS", REPO.parent / "shared" / "corpus"))
SOURCE = CORPUS / "jpeg/camera/20240427_234934.JPG"
MIB = 1024 * 1024


def build(work: Path, files: int) -> str:
    """N files of the same photo with distinct trailing bytes (so distinct checksums), one row each."""
    import xxhash
    from django.core.management import call_command
    from django.db import transaction

    from imports.models import ImageFile, ImportSession, Photo
    from indexing.rewrite import storage_create

    call_command("migrate", verbosity=0)
    base = work / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Validation bench")
    session = ImportSession.objects.create(title="Bench", file_storage=storage)
    data = SOURCE.read_bytes()
    photos, rows = [], []
    for n in range(files):
        relative = f"photos/d{n % 12:02d}/IMG_{n:05d}.jpg"
        path = storage.full_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        body = data + n.to_bytes(8, "big")
        path.write_bytes(body)
        photos.append(Photo(hothash=f"{n:032x}", has_hotpreview=False))
        rows.append((relative, len(body), path.stat().st_mtime_ns, xxhash.xxh3_128(body).hexdigest()))
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
    os.sync()
    return str(storage.storage_uuid)


def paths_of(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "photos").rglob("*.jpg"))


def plain_read(paths) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(MIB):
                total += len(chunk)
    return total


def plain_readinto(paths) -> int:
    buffer, total = bytearray(MIB), 0
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while n := handle.readinto(buffer):
                total += n
    return total


def drop_caches() -> bool:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def timed(fn, repeat=3, before=None) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        if before:
            before()
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=750)
    args = parser.parse_args()

    work = REPO / "var" / "bench" / f"validate-{args.files}"
    complete = work / ".complete"
    if not complete.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    scan_benchmark.setup_django(work)
    if complete.exists():
        uuid = complete.read_text().strip()
        print(f"Reusing the storage of {args.files} files in {work}", flush=True)
    else:
        print(f"Building a storage of {args.files} copies of {SOURCE.name} in {work} ...", flush=True)
        uuid = build(work, args.files)
        complete.write_text(uuid)

    from indexing.validation import validate_storage
    from storages.models import FileStorage

    storage = FileStorage.objects.get(storage_uuid=uuid)
    paths = paths_of(storage.full_path)
    size = sum(os.path.getsize(p) for p in paths)
    gb = size / 1e9

    plain_readinto(paths)  # warm the page cache
    read_s, _ = timed(lambda: plain_read(paths))
    into_s, _ = timed(lambda: plain_readinto(paths))
    warm_s, report = timed(lambda: validate_storage(storage, mode="full", from_drive=False))
    assert report.validated_files == len(paths) and report.bytes_read == size, report.as_dict()
    quick_s, _ = timed(lambda: validate_storage(storage, mode="quick"))
    baseline_warm = min(read_s, into_s)

    can_drop = drop_caches()
    cold = {}
    if can_drop:
        cold["plain_readinto_s"], _ = timed(lambda: plain_readinto(paths), before=drop_caches)
        cold["validate_full_s"], report = timed(lambda: validate_storage(storage, mode="full"), before=drop_caches)
        assert report.validated_files == len(paths)
    plain_readinto(paths)  # warm again: production validation ignores a warm cache and reads the drive anyway
    default_warm_s, _ = timed(lambda: validate_storage(storage, mode="full"))

    rows = [
        ("warm: plain read() 1 MiB", read_s, None),
        ("warm: plain readinto() 1 MiB", into_s, None),
        ("warm: validate full (cache used)", warm_s, baseline_warm),
    ]
    if can_drop:
        rows += [
            ("cold: plain readinto() 1 MiB", cold["plain_readinto_s"], None),
            ("cold: validate full (default)", cold["validate_full_s"], cold["plain_readinto_s"]),
        ]
    rows += [
        ("warm cache, validate full (default)", default_warm_s, None),
        ("validate quick (size + mtime)", quick_s, None),
    ]
    print(f"\nValidation of {len(paths)} files, {size / MIB:,.0f} MiB, on {os.cpu_count()} cores")
    print(f"{'run':38} {'seconds':>8} {'GB/s':>7}  vs plain read")
    for name, seconds, base in rows:
        ratio = f"{base / seconds:.0%}" if base else ""
        print(f"{name:38} {seconds:8.3f} {gb / seconds:7.2f}  {ratio}")
    if not can_drop:
        print("(cold-cache figures skipped: /proc/sys/vm/drop_caches is not writable here)")

    figures = {
        "files": len(paths),
        "bytes": size,
        "cores": os.cpu_count(),
        "warm": {
            "plain_read_s": read_s,
            "plain_readinto_s": into_s,
            "validate_full_cached_s": warm_s,
            "ratio": baseline_warm / warm_s,
        },
        "cold": {**cold, "ratio": cold["plain_readinto_s"] / cold["validate_full_s"]} if can_drop else None,
        "validate_full_default_after_warm_read_s": default_warm_s,
        "validate_quick_s": quick_s,
        "target": {"full_vs_plain_read": 0.8},
        "met": {
            "warm": baseline_warm / warm_s >= 0.8,
            "cold": (cold["plain_readinto_s"] / cold["validate_full_s"] >= 0.8) if can_drop else None,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "validate.json").write_text(json.dumps(figures, indent=2))
    print(f"\ntargets met: {figures['met']}\nFigures written to {RESULTS / 'validate.json'}")


if __name__ == "__main__":
    main()
