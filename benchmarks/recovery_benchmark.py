"""Recovery benchmark (issue 13): the cost of recovering storages whose indexes are hostile in size.

1. An index naming 20,000 sessions beside 2,000 files in .imalink/index-backups/ (1,000 of the named sessions
   have two backups each: the newest corrupt, the older one good; the other 19,000 are missing). Target: <= 5 s.
2. A session index of about 100 MB (a few hundred good entries, the rest entries whose key is not a hothash, so
   the figure is the reading and walking of the index, not the database). Target: the memory recovery takes
   (tracemalloc peak, and the process's peak RSS growth) <= 4x the index file.

Prints a table and writes benchmarks/results/recovery.json.

    .venv/bin/python benchmarks/recovery_benchmark.py [--sessions 20000] [--megabytes 100]
"""

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO / "benchmarks"))

from scan_benchmark import setup_django  # noqa: E402  (the house set-up: a fresh SQLite database under work/)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def new_storage(work: Path, name: str):
    from django.core.management import call_command

    from indexing.rewrite import storage_create

    base = work / name
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name=name)
    root = storage.full_path
    call_command("flush", interactive=False, verbosity=0)
    return base, root, storage.storage_uuid


def many_sessions(work: Path, sessions: int) -> dict:
    from indexing.recovery import recover_from_indexes

    base, root, uuid = new_storage(work, "many")
    named = [
        {"id": i, "title": f"Session {i}", "index_file": f"imports/session_{i}.json", "file_count": 0}
        for i in range(1, sessions + 1)
    ]
    (root / "index.json").write_text(
        json.dumps({"storage_info": {"uuid": str(uuid), "display_name": "Many"}, "import_sessions": named})
    )
    backups = root / ".imalink" / "index-backups"
    backups.mkdir(exist_ok=True)
    with_backups = min(1000, sessions)
    for i in range(1, with_backups + 1):
        good = {"import_session": {"id": i, "title": f"Session {i}", "file_storage_id": 1}, "files": {}}
        (backups / f"session_{i}.20260101T000000000000Z.json").write_text(json.dumps(good))
        (backups / f"session_{i}.20260102T000000000000Z.json").write_text('{"import_session": ')
    started = time.perf_counter()
    report = recover_from_indexes([base])
    seconds = time.perf_counter() - started
    (found,) = report.storages
    return {
        "sessions_named": sessions,
        "backup_files": 2 * with_backups,
        "seconds": round(seconds, 2),
        "sessions_restored": len(found["sessions_restored"]),
        "missing": sum(1 for v in found["index_sources"].values() if v == "missing"),
        "target_s": 5,
    }


def large_index(work: Path, megabytes: int) -> dict:
    from indexing.recovery import recover_from_indexes

    base, root, uuid = new_storage(work, "large")
    path = root / "imports" / "session_1.json"
    good = 300
    with path.open("w") as out:  # written entry by entry, so building it does not raise this process's peak
        out.write('{"import_session": {"id": 1, "title": "Large", "file_storage_id": 1}, "files": {')
        i = 0
        while out.tell() < megabytes * 1_000_000:
            key = f"{i:032x}" if i < good else f"not-a-hothash-{i}"
            entry = {
                "path": f"photos/2024/IMG_{i:07d}.jpg",
                "original_filename": f"IMG_{i:07d}.jpg",
                "file_size": 1234567,
                "checksum": f"xxh3_128:{i:032x}",
                "mtime_ns": 1_700_000_000_000_000_000 + i,
                "file_format": "jpeg",
                "is_primary": True,
                "status": "present",
                "taken_at": "2024-10-18T14:30:52+00:00",
                "width": 4000,
                "height": 3000,
                "has_hotpreview": False,
                "camera_make": "NIKON",
                "camera_model": "COOLPIX P6000",
                "photo": {"title": "", "description": "", "rating": 0, "tags": ["holiday", "family"], "author": None},
                "companions": [],
            }
            out.write(("," if i else "") + json.dumps(key) + ": " + json.dumps(entry, indent=2))
            i += 1
        out.write("}}\n")
    size = path.stat().st_size
    (root / "index.json").write_text(
        json.dumps(
            {
                "storage_info": {"uuid": str(uuid), "display_name": "Large"},
                "import_sessions": [{"index_file": "imports/session_1.json"}],
            }
        )
    )
    rss_before = rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    report = recover_from_indexes([base])
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    (found,) = report.storages
    return {
        "index_mb": round(size / 1e6, 1),
        "entries": i,
        "files_restored": found["files_restored"],
        "seconds_traced": round(seconds, 1),
        "tracemalloc_peak_mb": round(peak / 1e6, 1),
        "peak_over_index": round(peak / size, 2),
        "rss_peak_before_mb": round(rss_before, 1),  # ru_maxrss is a high-water mark: growth is what rises above it
        "rss_growth_mb": round(rss_mb() - rss_before, 1),
        "rss_growth_over_index": round((rss_mb() - rss_before) * 1024 * 1024 / size, 2),
        "target_ratio": 4,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imalink-recovery-bench-"))
    try:
        setup_django(work)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        many = many_sessions(work, args.sessions)
        large = large_index(work, args.megabytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        (
            f"{many['sessions_named']:,} sessions beside {many['backup_files']:,} backups",
            f"{many['seconds']} s",
            "<= 5 s",
        ),
        ("  sessions restored / missing", f"{many['sessions_restored']} / {many['missing']}", ""),
        (f"{large['index_mb']} MB session index: tracemalloc peak", f"{large['tracemalloc_peak_mb']} MB", ""),
        ("  peak / index size", f"{large['peak_over_index']}x", "<= 4x"),
        ("  peak RSS growth / index size", f"{large['rss_growth_over_index']}x", "<= 4x"),
        ("  (process peak RSS before it)", f"{large['rss_peak_before_mb']} MB", ""),
        ("  time (under tracemalloc)", f"{large['seconds_traced']} s", ""),
    ]
    print(f"{'case':<52} {'figure':>14} {'target':>8}")
    for case, figure, target in rows:
        print(f"{case:<52} {figure:>14} {target:>8}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recovery.json").write_text(json.dumps({"many_sessions": many, "large_index": large}, indent=2) + "\n")


if __name__ == "__main__":
    main()
