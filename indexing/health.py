"""The health check (the seed's Workflow 7): every storage's accessibility, space, files and indexes,
the issues found, and growth since the last report, stored as a HealthReport.
"""

import logging

from django.db.models import Count, Sum

from imports.counting import under_protected_by_storage
from imports.models import ImageFile
from imports.totals import storage_statistics
from storages.models import FileStorage
from storages.services import low_on_space, min_copies, storage_check_accessibility

from .alerts import send_health_alerts
from .models import HealthReport
from .writer import index_status

logger = logging.getLogger("imalink.health")
GB = 1024**3


def _issue(key, severity, message, storage=None) -> dict:
    return {
        "key": key,
        "severity": severity,
        "message": message,
        "storage_uuid": str(storage.storage_uuid) if storage else None,
    }


def run_health_check(*, progress=None) -> HealthReport:
    progress = progress or (lambda **kw: None)
    storages = list(FileStorage.objects.filter(is_active=True).order_by("id"))
    progress(total=len(storages), done=0, force=True)
    rows, issues = [], []
    totals = {"files": 0, "size_mb": 0.0}
    # The copy policy (issue 17): photos with a file on a storage that are kept in fewer storages than it asks.
    wanted = min_copies()
    below = under_protected_by_storage(wanted) if wanted > 1 else {}
    for done, storage in enumerate(storages, start=1):
        progress(current=storage.display_name)
        access = storage_check_accessibility(storage)
        stats = storage_statistics(storage)
        figures = stats["statistics"]
        modified = ImageFile.objects.filter(file_storage=storage, status=ImageFile.Status.MODIFIED).count()
        status = index_status(storage) if access.is_accessible else None
        indexes_healthy = bool(status and status["master_index_exists"] and status["healthy"])
        row = {
            "uuid": str(storage.storage_uuid),
            "name": storage.display_name,
            "accessible": access.is_accessible,
            "reason": access.reason,
            "free_space_gb": access.free_space_gb or 0.0,
            "total_files": figures["total_files"],
            "size_mb": figures["total_size_mb"],
            "import_sessions": len(stats["import_sessions"]),
            "indexes_healthy": indexes_healthy,
            "missing_files": figures["missing_files"],
            "modified_files": modified,
            "photos_only_here": figures["photos_only_here"],
            "photos_below_min_copies": below.get(storage.pk, 0),
        }
        rows.append(row)
        name = storage.display_name
        if not access.is_accessible:
            issues.append(
                _issue(
                    f"not_accessible:{storage.storage_uuid}",
                    "error",
                    f"Storage '{name}' is not accessible: {access.reason}",
                    storage,
                )
            )
        else:
            totals["files"] += figures["total_files"]
            totals["size_mb"] += figures["total_size_mb"]
            if low_on_space(access.free_bytes):
                issues.append(
                    _issue(
                        f"low_space:{storage.storage_uuid}",
                        "warning",
                        f"Storage '{name}' is low on space: {access.free_space_gb:.2f} GB free",
                        storage,
                    )
                )
            if status and not status["master_index_exists"]:
                issues.append(
                    _issue(
                        f"missing_index:{storage.storage_uuid}",
                        "error",
                        f"Storage '{name}' has missing indexes",
                        storage,
                    )
                )
            elif status:
                missing = [s["session_id"] for s in status["sessions"] if not s["exists"]]
                stale = [s["session_id"] for s in status["sessions"] if s["exists"] and not s["current"]]
                if missing:
                    issues.append(
                        _issue(
                            f"missing_index:{storage.storage_uuid}",
                            "error",
                            f"Storage '{name}' has missing indexes (sessions {', '.join(map(str, missing))})",
                            storage,
                        )
                    )
                if stale or not status["master_index"]["current"]:
                    issues.append(
                        _issue(
                            f"stale_index:{storage.storage_uuid}",
                            "warning",
                            f"Storage '{name}' has stale indexes; regenerate them",
                            storage,
                        )
                    )
        if figures["missing_files"]:
            issues.append(
                _issue(
                    f"missing_files:{storage.storage_uuid}",
                    "error",
                    f"Storage '{name}' has {figures['missing_files']} missing files",
                    storage,
                )
            )
        if modified:
            issues.append(
                _issue(
                    f"modified_files:{storage.storage_uuid}",
                    "warning",
                    f"Storage '{name}' has {modified} files whose bytes changed (edited or corrupted)",
                    storage,
                )
            )
        few = below.get(storage.pk, 0)
        if few:
            link = f"/api/v1/photos/?copies_lt={wanted}&storage_uuid={storage.storage_uuid}"
            issues.append(
                {
                    **_issue(
                        f"few_copies:{storage.storage_uuid}",
                        "warning",
                        f"Storage '{name}' holds {few} photos kept in fewer than {wanted} storages: {link}",
                        storage,
                    ),
                    "link": link,
                }
            )
        progress(done=done)
    previous = HealthReport.objects.order_by("-created_at", "-id").first()
    all_files = ImageFile.objects.exclude(status=ImageFile.Status.MISSING).aggregate(
        n=Count("id"), size=Sum("file_size")
    )
    growth = {"files": all_files["n"], "bytes": all_files["size"] or 0}
    if previous and previous.growth:
        growth["files_added"] = growth["files"] - previous.growth.get("files", 0)
        growth["bytes_added"] = growth["bytes"] - previous.growth.get("bytes", 0)
        growth["since"] = previous.created_at.isoformat()
    else:
        growth["files_added"], growth["bytes_added"], growth["since"] = growth["files"], growth["bytes"], None
    summary = {
        "total_storages": len(storages),
        "accessible_storages": sum(1 for r in rows if r["accessible"]),
        "total_files": totals["files"],
        "total_size_gb": round(totals["size_mb"] / 1024, 2),
        "issues_count": len(issues),
    }
    report = HealthReport.objects.create(summary=summary, storages=rows, issues=issues, growth=growth)
    logger.info("health report %s: %d storages, %d issues", report.pk, len(rows), len(issues))
    send_health_alerts(report)
    return report


def run_health_job(job, ctx) -> dict:
    report = run_health_check(progress=ctx.progress)
    return {"report_id": report.pk, **report.summary}
