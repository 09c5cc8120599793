"""The index revision triggers of migration 0007: every change to a row an index is built from bumps that
index's scope, whatever made it (save, a bare UPDATE, a bulk insert), and nothing else does. Run on SQLite and
on PostgreSQL (DATABASE_URL).
"""

import shutil

import pytest
from django.db import connection

from imalink.triggers import installed_triggers
from imports.models import Author, ImageFile, ImportSession, Photo
from indexing.models import IndexRevision
from indexing.rewrite import import_folder
from indexing.writer import index_status, write_storage_indexes
from storages.models import FileStorage

pytestmark = pytest.mark.django_db(transaction=True)

CARD_FILES = ["jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg"]
TRIGGERS = {
    f"imalink_rev_{name}"
    for name in (
        "imagefile_insert",
        "imagefile_update",
        "imagefile_delete",
        "photo_update",
        "author_update",
        "importsession_insert",
        "importsession_update",
        "importsession_delete",
        "filestorage_update",
    )
}


@pytest.fixture
def session(make_storage, allowed_root, corpus):
    storage = FileStorage.objects.get(storage_uuid=make_storage("Main")["uuid"])
    card = allowed_root / "card"
    card.mkdir()
    for relative in CARD_FILES:
        shutil.copy(corpus / relative, card)
    author = Author.objects.create(name="Kari", email="kari@example.org")
    session = ImportSession.objects.create(title="Card", file_storage=storage, default_author=author)
    assert import_folder(session_id=session.pk, source_path=str(card)).imported == 2
    write_storage_indexes(storage)
    return ImportSession.objects.select_related("file_storage", "default_author").get(pk=session.pk)


def revisions(session):
    found = dict(IndexRevision.objects.values_list("scope", "revision"))
    return found.get(f"session:{session.pk}", 0), found.get(f"storage:{session.file_storage_id}", 0)


def bumped(session, change):
    """Which of (session index, master index) the change bumps."""
    before = revisions(session)
    change()
    after = revisions(session)
    return tuple(a > b for a, b in zip(after, before, strict=True))


def test_the_triggers_are_installed():
    assert installed_triggers(connection, "imalink_rev_") == TRIGGERS


def test_bare_updates_bump_the_indexes_built_from_them(session):
    photos = Photo.objects.filter(files__import_session=session)
    files = ImageFile.objects.filter(import_session=session)
    assert bumped(session, lambda: photos.update(rating=4)) == (True, False)
    assert bumped(
        session, lambda: Author.objects.filter(pk=session.default_author_id).update(email="kari@example.com")
    ) == (True, False)
    assert bumped(session, lambda: ImportSession.objects.filter(pk=session.pk).update(description="Italy")) == (
        True,
        False,
    )
    assert bumped(session, lambda: ImportSession.objects.filter(pk=session.pk).update(title="Italy")) == (True, True)
    assert bumped(session, lambda: files.update(checksum="0" * 32)) == (True, False)
    assert bumped(session, lambda: files.update(status=ImageFile.Status.MISSING)) == (True, True)
    assert bumped(
        session, lambda: FileStorage.objects.filter(pk=session.file_storage_id).update(display_name="Renamed")
    ) == (False, True)
    assert bumped(
        session, lambda: FileStorage.objects.filter(pk=session.file_storage_id).update(directory_name="imalink_moved")
    ) == (True, True)


def test_what_no_index_holds_bumps_nothing(session):
    from django.utils import timezone

    now = timezone.now()
    assert bumped(session, lambda: ImageFile.objects.filter(import_session=session).update(last_seen_at=now)) == (
        False,
        False,
    )
    assert bumped(session, lambda: Photo.objects.filter(files__import_session=session).update(hotpreview=b"x")) == (
        False,
        False,
    )
    assert bumped(session, lambda: Photo.objects.filter(files__import_session=session).update(rating=0)) == (
        False,
        False,
    )  # unchanged
    assert bumped(
        session, lambda: FileStorage.objects.filter(pk=session.file_storage_id).update(last_index_at=now, free_bytes=1)
    ) == (False, False)


def test_rows_added_and_removed_bump_the_indexes(session):
    other = ImportSession.objects.create(title="Later", file_storage=session.file_storage)
    assert revisions(other)[0] > 0
    assert bumped(session, lambda: other.delete()) == (False, True)
    photo = Photo.objects.filter(files__import_session=session).first()
    row = ImageFile.objects.filter(photo=photo).first()
    added = ImageFile(
        photo=photo,
        import_session=session,
        file_storage=session.file_storage,
        relative_path="photos/copy.jpg",
        original_filename="copy.jpg",
        file_format="jpeg",
        file_size=row.file_size,
        mtime_ns=0,
        checksum=row.checksum,
    )
    assert bumped(session, lambda: ImageFile.objects.bulk_create([added])) == (True, True)
    assert bumped(session, lambda: ImageFile.objects.filter(relative_path="photos/copy.jpg").delete()) == (True, True)


def test_status_is_stale_after_a_bare_update_of_each_source(session):
    storage = session.file_storage

    def status():
        storage.refresh_from_db()
        found = index_status(storage)
        return found["sessions"][0]["status"], found["master_index"]["status"]

    assert status() == ("current", "current")
    Author.objects.filter(pk=session.default_author_id).update(name="Kari Nordmann")  # also each photo's author
    assert status() == ("stale", "current")
    write_storage_indexes(storage)
    Photo.objects.filter(files__import_session=session).update(author=Author.objects.create(name="Ola"))
    assert status() == ("stale", "current")
    write_storage_indexes(storage)
    ImportSession.objects.filter(pk=session.pk).update(title="Italia")
    assert status() == ("stale", "stale")
    write_storage_indexes(storage)
    FileStorage.objects.filter(pk=storage.pk).update(display_name="Renamed")
    assert status() == ("current", "stale")
    write_storage_indexes(storage)
    assert status() == ("current", "current")


def test_a_photo_author_rename_is_seen_by_the_trigger_alone(session, monkeypatch):
    """The session's own objects do not change when another author is renamed: only the revision can tell."""
    storage = session.file_storage
    ola = Author.objects.create(name="Ola")
    Photo.objects.filter(files__import_session=session).update(author=ola)
    write_storage_indexes(storage)
    assert index_status(storage)["sessions"][0]["status"] == "current"
    Author.objects.filter(pk=ola.pk).update(name="Ola Nordmann")
    assert index_status(storage)["sessions"][0]["status"] == "stale"


def test_an_update_typed_in_a_sql_shell_makes_the_index_stale_with_nothing_rebuilt(session, monkeypatch):
    """The revision is the whole of the database side of the rule: no Django code runs, and none need be."""
    storage = session.file_storage
    assert index_status(storage)["sessions"][0]["status"] == "current"
    with connection.cursor() as cursor:
        cursor.execute("UPDATE imports_photo SET title = 'typed by hand' WHERE title = ''")
        assert cursor.rowcount == 2
    monkeypatch.setattr("indexing.writer.build_session_index", lambda session: pytest.fail("rebuilt"))
    monkeypatch.setattr("indexing.writer.build_master_index", lambda storage: pytest.fail("rebuilt"))
    found = index_status(storage)
    assert (found["sessions"][0]["status"], found["master_index"]["status"]) == ("stale", "current")


def test_a_drive_unplugged_and_plugged_in_again_leaves_its_indexes_current(session):
    """Accessibility is judged before any index is, so its flips move no revision (indexing migration 0010)."""
    storage = session.file_storage
    away = storage.full_path.with_name("away")
    assert bumped(session, lambda: FileStorage.objects.filter(pk=storage.pk).update(is_accessible=False)) == (
        False,
        False,
    )
    storage.full_path.rename(away)
    from storages.services import storage_check_accessibility

    assert storage_check_accessibility(storage).is_accessible is False
    away.rename(storage.full_path)
    assert storage_check_accessibility(storage).is_accessible is True
    status = index_status(FileStorage.objects.get(pk=storage.pk))
    assert status["master_index"]["status"] == "current" and status["healthy"], status
