"""The recovery drill: rebuild from the indexes into a scratch database and compare it with the live one.

This is how a user "tests recovery procedures regularly" (the seed's best practices) without risking
anything: the rebuild runs in a child process on a throwaway SQLite file and writes nothing on the drives.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import xxhash
from django.conf import settings
from django.core.management import call_command

from imports.models import ImageFile, ImportSession
from storages.models import FileStorage

from .recovery import recover_from_indexes

MAX_DIFFERENCES = 1000


def _iso(value):
    return value.isoformat() if value else None


def _person(author):
    return {"name": author.name, "email": author.email} if author else None


def snapshot(storage_uuids=None) -> dict:
    """Everything the indexes promise to keep, keyed by what survives a rebuild (uuids, ids, hothashes, paths)."""

    storages = FileStorage.objects.all()
    if storage_uuids is not None:
        storages = storages.filter(storage_uuid__in=list(storage_uuids))
    result = {"storages": {}, "sessions": {}, "photos": {}, "files": {}}
    for s in storages:
        result["storages"][str(s.storage_uuid)] = {
            "id": s.id,
            "directory_name": s.directory_name,
            "base_path": s.base_path,
            "display_name": s.display_name,
            "description": s.description,
        }
    ids = [s.id for s in storages]
    for session in ImportSession.objects.filter(file_storage_id__in=ids).select_related(
        "file_storage", "default_author"
    ):
        result["sessions"][str(session.id)] = {
            "title": session.title,
            "description": session.description,
            "storage": str(session.file_storage.storage_uuid),
            "default_author": _person(session.default_author),
            "source_path": session.source_path,
            "target_subdirectory": session.target_subdirectory,
            "imported_at": _iso(session.imported_at),
        }
    files = ImageFile.objects.filter(file_storage_id__in=ids).select_related("file_storage", "photo", "photo__author")
    for f in files.iterator(chunk_size=2000):
        result["files"][f"{f.file_storage.storage_uuid}:{f.relative_path}:{f.checksum}"] = {
            "size": f.file_size,
            "mtime_ns": f.mtime_ns,
            "format": f.file_format,
            "is_primary": f.is_primary,
            "status": f.status,
            "session": f.import_session_id,
            "photo": f.photo.hothash,
            "original_filename": f.original_filename,
        }
        p = f.photo
        if p.hothash not in result["photos"]:
            preview = bytes(p.hotpreview) if p.hotpreview else b""
            result["photos"][p.hothash] = {
                "width": p.width,
                "height": p.height,
                "taken_at": _iso(p.taken_at),
                "gps": [p.gps_latitude, p.gps_longitude],
                "camera": [p.camera_make, p.camera_model],
                "has_hotpreview": p.has_hotpreview,
                "hotpreview": xxhash.xxh3_64_hexdigest(preview) if preview else None,
                "title": p.title,
                "description": p.description,
                "rating": p.rating,
                "tags": p.tags,
                "author": _person(p.author),
            }
    return result


def diff_snapshots(live: dict, recovered: dict) -> list[dict]:
    differences = []
    for kind in ("storages", "sessions", "photos", "files"):
        a, b = live.get(kind, {}), recovered.get(kind, {})
        for key in sorted(set(a) | set(b)):
            if key not in b:
                differences.append({"kind": kind, "key": key, "field": None, "live": "present", "recovered": "absent"})
            elif key not in a:
                differences.append({"kind": kind, "key": key, "field": None, "live": "absent", "recovered": "present"})
            else:
                for name in sorted(set(a[key]) | set(b[key])):
                    if a[key].get(name) != b[key].get(name):
                        differences.append(
                            {
                                "kind": kind,
                                "key": key,
                                "field": name,
                                "live": a[key].get(name),
                                "recovered": b[key].get(name),
                            }
                        )
            if len(differences) >= MAX_DIFFERENCES:
                return differences
    return differences


@dataclass
class DrillReport:
    search_roots: list
    storages_checked: list = field(default_factory=list)
    differences: list = field(default_factory=list)
    difference_count: int = 0
    recovery: dict | None = None
    passed: bool = False
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def recovery_drill(search_roots=None, *, progress=None) -> DrillReport:
    """Rebuild the storages under the roots (default: every active storage's base path) in a scratch
    database, and report every difference from the live database."""

    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    if not search_roots:
        search_roots = sorted({s.base_path for s in FileStorage.objects.filter(is_active=True)})
    report = DrillReport(search_roots=[str(r) for r in search_roots])
    progress(total=2, done=0, current="rebuilding in a scratch database", force=True)
    with tempfile.TemporaryDirectory(prefix="imalink-drill-") as scratch:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{scratch}/drill.sqlite3",
            "IMALINK_VAR_DIR": str(Path(scratch) / "var"),
            "DJANGO_SETTINGS_MODULE": "imalink.settings",
            "SECRET_KEY": settings.SECRET_KEY,
            "LOG_LEVEL": "WARNING",
        }
        out = subprocess.run(
            [sys.executable, "-m", "django", "drill_scratch_rebuild", *report.search_roots],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=6 * 3600,
        )
    if out.returncode != 0:
        raise RuntimeError(
            "the scratch rebuild failed: "
            f"{out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
        )
    child = json.loads(out.stdout.strip().splitlines()[-1])
    progress(done=1, current="comparing", force=True)
    recovered = child["snapshot"]
    report.recovery = {"found": child["found"], "problems": child["problems"]}
    report.storages_checked = sorted(recovered["storages"])
    live = snapshot(report.storages_checked)
    report.differences = diff_snapshots(live, recovered)
    report.difference_count = len(report.differences)
    report.passed = report.difference_count == 0 and bool(report.storages_checked)
    report.duration_s = round(time.monotonic() - started, 3)
    progress(done=2, current=None, force=True)
    return report


def run_drill_job(job, ctx) -> dict:
    return recovery_drill(job.params.get("search_roots") or None, progress=ctx.progress).as_dict()


def scratch_rebuild(roots) -> dict:
    """In the scratch process (manage.py drill_scratch_rebuild): migrate its empty database, rebuild into it from
    the indexes under the roots, and say what it found, with its snapshot."""
    call_command("migrate", verbosity=0)
    report = recover_from_indexes([Path(r) for r in roots], touch_disk=False)
    problems = sum(len(s["problems"]) + len(s["conflicts"]) for s in report.storages)
    return {"found": report.found, "problems": problems, "snapshot": snapshot()}
