"""After a change, rewrite the indexes: the storage and import operations that must leave a storage's JSON indexes
saying what the database says, each wrapped here around the lower app's plain function.

- storage_create: storages makes the folder and the row; the master index is written in the same transaction.
- storage_migrate (and storage_update_and_migrate): storages moves the row to the verified copy; the master
  index is rewritten there, under the storage's lock, and the report says how the indexes stand.
- import_folder / run_import_job: imports does the import; its on_finished hook writes the session's index and
  the master index however the import stops.
- photo_update: imports changes the photo; the session indexes that name it are queued for rewriting.

Callers that change storages or imports (API routes, pages, admin actions, commands) call these, not the
lower functions, so no lower app ever imports the writer.
"""

import logging
from functools import partial

from django.db import transaction

from imalink.errors import ImalinkError, StorageUnavailable
from imports import pipeline
from imports import services as import_services
from imports.models import ImportSession
from jobs import services as jobs
from jobs.models import Job
from storages import services as storage_services
from storages.services import MigrationReport, storage_require_available

from .writer import index_status, write_master_index, write_session_index

logger = logging.getLogger("imalink.indexing")


def storage_create(*, base_path: str, display_name: str, description: str = ""):
    """A new storage, with its master index written before the transaction that records it commits."""
    return storage_services.storage_create(
        base_path=base_path, display_name=display_name, description=description, on_created=write_master_index
    )


def storage_migrate(storage, *, new_base_path: str) -> MigrationReport:
    """Point the storage at its verified copy, rewrite its master index there, and report how its indexes stand."""
    report = storage_services.storage_migrate(storage, new_base_path=new_base_path, rewrite=write_master_index)
    if report.accessibility.get("is_accessible"):
        report.index_status = index_summary(index_status(storage))
    return report


def storage_update_and_migrate(
    storage, *, display_name=None, description=None, xmp_writeback=None, role=None, base_path=None
):
    """storages.services.storage_update_and_migrate, with the master index rewritten at the new place and the
    report saying how the indexes stand."""
    storage, report = storage_services.storage_update_and_migrate(
        storage,
        display_name=display_name,
        description=description,
        xmp_writeback=xmp_writeback,
        role=role,
        base_path=base_path,
        rewrite=write_master_index,
    )
    if report is not None and report.accessibility.get("is_accessible"):
        report.index_status = index_summary(index_status(storage))
    return storage, report


def index_summary(status: dict) -> dict:
    """index_status in brief: whether all is well, and which sessions' indexes are stale, missing or corrupt."""

    def ids(state: str) -> list[int]:
        return [s["session_id"] for s in status["sessions"] if s["status"] == state]

    return {
        "healthy": status["healthy"],
        "master_index_exists": status["master_index_exists"],
        "master_index_status": status["master_index"]["status"],
        "stale_session_ids": ids("stale"),
        "missing_session_ids": ids("missing"),
        "corrupt_session_ids": ids("corrupt"),
    }


def write_import_indexes(session: ImportSession) -> None:
    """The import's on_finished hook: its session's index, then the storage's master index.

    A storage that is gone or read-only by now is reported and skipped; index status then reports the index as
    missing or stale, and the next write (a re-run, the weekly maintenance) catches up.
    """
    try:
        storage_require_available(session.file_storage, writable=True)
    except ImalinkError as exc:
        logger.warning("indexes of session %s not written: %s", session.pk, exc.message)
        return
    write_session_index(session)
    write_master_index(session.file_storage)


def import_folder(**kwargs):
    """imports.pipeline.import_folder, with its indexes written when it stops."""
    return pipeline.import_folder(**kwargs, on_finished=write_import_indexes)


def run_import_job(job, ctx) -> dict:
    """Job runner for kind 'import': the import, then its indexes."""
    return pipeline.run_import_job(job, ctx, on_finished=write_import_indexes)


def photo_update(photo, **changes):
    """imports.services.photo_update, with the session indexes that name the photo queued for rewriting in the
    same transaction (recovery rebuilds the user's metadata from them)."""
    return import_services.photo_update(photo, **changes, on_saved=queue_session_indexes)


def queue_session_indexes(photo) -> None:
    """Queue an index_session job for every session holding a file of this photo on an available storage.

    Recovery rebuilds the user's metadata from the session indexes, so they must soon say what the database
    says. A session that already has a queued index job is left alone: that job will read the new values.
    """
    sessions = ImportSession.objects.filter(image_files__photo=photo).select_related("file_storage").distinct()
    for session in sessions:
        try:
            storage_require_available(session.file_storage, writable=True)
        except StorageUnavailable:
            logger.info(
                "session %s index not queued after editing photo %s: its storage is unavailable",
                session.pk,
                photo.hothash,
            )
            continue
        if Job.objects.filter(kind="index_session", session=session, status=Job.Status.QUEUED).exists():
            continue
        job = jobs.job_start(kind="index_session", storage=session.file_storage, session=session, enqueue=False)
        transaction.on_commit(partial(jobs.job_enqueue_quietly, job.pk))
