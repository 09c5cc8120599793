"""Page benchmark: every dashboard page rendered by Django's test client with 100,000 photos in the database.

Half the photos have a second copy on a backup storage (issue 17), so the copies rows (photo detail, copies_lt,
photos_only_here, retire-check) count real copies. Target: each page under 300 ms on the server. Prints a table
(median and worst of several renders) and writes benchmarks/results/pages.json.

    .venv/bin/python benchmarks/pages_benchmark.py [--files 100000] [--runs 5]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import scan_benchmark  # noqa: E402  (its builder makes the storage, files and rows)

RESULTS = REPO / "benchmarks" / "results"


def add_backup_copies(work: Path, main_uuid: str, every: int = 2) -> str:
    """Copies across storages (issue 17): a second storage holding every `every`-th photo's file (rows only, as a
    replication records them), and every file verified, as an import leaves it. Returns the backup's uuid."""
    from django.db import transaction
    from django.utils import timezone

    from imports.models import ImageFile, ImportSession
    from indexing.rewrite import storage_create
    from storages.models import FileStorage

    main = FileStorage.objects.get(storage_uuid=main_uuid)
    base = work / "backup-drive"
    base.mkdir()
    backup = storage_create(base_path=str(base), display_name="Backup")
    now = timezone.now()
    ImageFile.objects.filter(file_storage=main).update(verified_at=now)
    session = ImportSession.objects.create(title="Backup of everything", file_storage=backup)
    rows = (
        ImageFile.objects.filter(file_storage=main)
        .order_by("id")
        .values_list("photo_id", "relative_path", "original_filename", "file_size", "mtime_ns", "checksum")
    )
    with transaction.atomic():
        ImageFile.objects.bulk_create(
            [
                ImageFile(
                    photo_id=photo_id,
                    import_session=session,
                    file_storage=backup,
                    relative_path=path,
                    original_filename=name,
                    file_format="jpeg",
                    file_size=size,
                    mtime_ns=mtime_ns,
                    checksum=checksum,
                    is_primary=False,
                    verified_at=now,
                )
                for n, (photo_id, path, name, size, mtime_ns, checksum) in enumerate(rows)
                if n % every == 0
            ],
            batch_size=1000,
        )
    return str(backup.storage_uuid)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    (REPO / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "var", prefix="bench-pages-") as tmp:
        work = Path(tmp)
        scan_benchmark.setup_django(work)
        print(f"Building {args.files:,} photos with their files and rows ...", flush=True)
        uuid = scan_benchmark.build(work, args.files)
        print("Copying every other photo to a backup storage (rows) ...", flush=True)
        backup_uuid = add_backup_copies(work, uuid)

        from django.contrib.auth import get_user_model
        from django.test import Client

        from imports.models import ImageFile, ImportSession, Photo
        from indexing.health import run_health_check
        from jobs.models import Job

        user = get_user_model().objects.create_superuser("bench", "", "bench-password-123")
        client = Client(SERVER_NAME="localhost")
        client.force_login(user)
        session = ImportSession.objects.order_by("id").first()
        photo = Photo.objects.order_by("id").first()
        for i in range(200):
            Job.objects.create(
                kind="scan",
                status="succeeded",
                result={"moved_files": [], "missing_files": [], "modified_files": [], "new_files": []},
            )
        health_started = time.perf_counter()
        run_health_check()  # with two storages, it counts each one's photos below the copy policy (issue 17)
        health_ms = (time.perf_counter() - health_started) * 1000
        pages = {
            "overview /": "/",
            "storage detail": f"/storages/{uuid}/",
            "session (1,000 photos, page 1)": f"/sessions/{session.pk}/",
            "session (last page)": f"/sessions/{session.pk}/?page=17",
            "photo": f"/photos/{photo.hothash}/",
            "new import": "/imports/new/",
            "jobs": "/jobs/",
            "recovery": "/recovery/",
            "health": "/health/",
            "API photos list": "/api/v1/photos/?page=50",
            "API storage statistics": f"/api/v1/file-storage/{uuid}/statistics",
            # Copies across storages (issue 17): half the photos have a second copy on the backup.
            "API photo detail with copies": f"/api/v1/photos/{photo.hothash}",
            "API photos copies_lt=2 (page 50)": "/api/v1/photos/?copies_lt=2&page=50",
            "API photos copies_lt=2 of a storage": f"/api/v1/photos/?copies_lt=2&storage_uuid={uuid}&page=50",
            "API backup statistics": f"/api/v1/file-storage/{backup_uuid}/statistics",
            "API retire-check (main)": f"/api/v1/file-storage/{uuid}/retire-check",
            "API retire-check (backup)": f"/api/v1/file-storage/{backup_uuid}/retire-check",
        }
        rows = {}
        for name, url in pages.items():
            times = []
            for _ in range(args.runs + 1):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (url, response.status_code)
            times = times[1:]  # the first render warms the template and query caches
            rows[name] = {"url": url, "median_ms": statistics.median(times), "worst_ms": max(times)}
        count = ImageFile.objects.count()

    print(f"\nPages with {count:,} photos (median / worst of {args.runs} renders, server side)")
    print(f"{'page':34} {'median ms':>10} {'worst ms':>10}")
    for name, r in rows.items():
        print(f"{name:34} {r['median_ms']:10.1f} {r['worst_ms']:10.1f}")
    print(f"\nhealth check (a job, not a page; counts photos below the copy policy per storage): {health_ms:.0f} ms")
    met = all(r["worst_ms"] < 300 for r in rows.values())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pages.json").write_text(
        json.dumps(
            {"photos": count, "pages": rows, "health_check_ms": health_ms, "target_ms": 300, "met": met}, indent=2
        )
    )
    print(f"\nevery page under 300 ms: {met}\nFigures written to {RESULTS / 'pages.json'}")


if __name__ == "__main__":
    main()
