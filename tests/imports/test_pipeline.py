"""imports.pipeline.import_folder on small real folders: clashes, duplicates of a picture, limits, walking."""

import os
import shutil

import pytest

from imports.checksums import file_checksum
from imports.models import ImageFile, ImportSession, Photo
from imports.pipeline import import_folder
from storages.models import FileStorage

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(make_storage):
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    return ImportSession.objects.create(title="Card", file_storage=storage)


@pytest.fixture
def card(allowed_root, corpus):
    folder = allowed_root / "card"
    (folder / "DCIM").mkdir(parents=True)
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", folder / "DCIM/IMG_001.jpg")
    shutil.copy(corpus / "jpeg/camera/jolla.jpg", folder / "IMG_002.jpg")
    return folder


def run(session, card, **kw):
    return import_folder(session_id=session.pk, source_path=str(card), **kw)


def test_a_name_that_exists_is_never_overwritten(session, card):
    storage_photos = session.file_storage.full_path / "photos" / "trip" / "DCIM"
    storage_photos.mkdir(parents=True)
    theirs = storage_photos / "IMG_001.jpg"
    theirs.write_bytes(b"the user's own file, not ours")
    report = run(session, card, target_subdirectory="trip")
    assert report.imported == 2
    assert theirs.read_bytes() == b"the user's own file, not ours"
    stored = ImageFile.objects.get(original_filename="IMG_001.jpg")
    assert stored.relative_path == "photos/trip/DCIM/IMG_001 (2).jpg"
    assert file_checksum(session.file_storage.full_path / stored.relative_path) == file_checksum(
        card / "DCIM/IMG_001.jpg"
    )


def test_the_same_picture_with_other_bytes_becomes_another_file_of_the_photo(session, card, allowed_root):
    run(session, card)
    edited = allowed_root / "edited"
    edited.mkdir()
    (edited / "IMG_001_edited.jpg").write_bytes((card / "DCIM/IMG_001.jpg").read_bytes() + b"\x00edited metadata")
    report = run(session, edited)
    assert (report.imported, report.duplicates, report.photos_created) == (1, 0, 0)
    first, second = ImageFile.objects.filter(photo__files__original_filename="IMG_001.jpg").distinct().order_by("id")
    assert first.photo_id == second.photo_id
    assert first.is_primary and not second.is_primary
    assert Photo.objects.count() == 2


def test_identical_files_in_one_source_are_stored_once(session, card):
    shutil.copy(card / "IMG_002.jpg", card / "DCIM/copy_of_002.jpg")
    report = run(session, card)
    assert (report.imported, report.duplicates) == (2, 1)
    assert ImageFile.objects.count() == 2


def test_the_pixel_limit_is_configurable(session, card, settings):
    settings.IMALINK_MAX_PIXELS = 1_000_000  # jolla.jpg is 3264x2448 = 8 MP; DSCN0010 is 640x480
    report = run(session, card)
    assert report.imported == 1
    assert report.failures == [{"path": "IMG_002.jpg", "code": "bomb", "reason": report.failures[0]["reason"]}]
    assert "8,0" in report.failures[0]["reason"] or "pixels" in report.failures[0]["reason"]
    assert not list((session.file_storage.full_path / "photos").rglob("IMG_002.jpg"))


def test_recursive_false_takes_only_the_top_folder(session, card):
    report = run(session, card, recursive=False)
    assert report.total == 1 and report.imported == 1
    assert ImageFile.objects.get().original_filename == "IMG_002.jpg"


def test_os_junk_is_ignored_and_symlinks_are_not_followed(session, card, tmp_path):
    (card / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (card / "Thumbs.db").write_bytes(b"junk")
    (card / "._IMG_002.jpg").write_bytes(b"AppleDouble")
    (card / "@eaDir").mkdir()
    (card / "@eaDir" / "SYNOPHOTO_THUMB.jpg").write_bytes((card / "IMG_002.jpg").read_bytes()[:100])
    outside = tmp_path / "outside.jpg"
    shutil.copy(card / "IMG_002.jpg", outside)
    os.symlink(outside, card / "link.jpg")
    report = run(session, card)
    assert report.total == 2 and report.imported == 2
    assert report.failures == [{"path": "link.jpg", "code": "symlink", "reason": "symbolic links are not followed"}]


def test_pipes_sockets_and_devices_are_reported_as_skipped_and_never_opened(session, card):
    import socket
    import stat

    os.mkfifo(card / "pipe.jpg")  # opening it for reading would hang the import
    os.mkdir(card / "sub")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(card / "sub" / "sock.jpg"))
    expected = [
        {"path": "pipe.jpg", "code": "special_file", "reason": "a named pipe (FIFO) is not a file; it was not opened"},
        {"path": "sub/sock.jpg", "code": "special_file", "reason": "a socket is not a file; it was not opened"},
    ]
    if os.geteuid() == 0:  # only root may make a device node
        os.mknod(card / "null.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        expected.append(
            {
                "path": "null.jpg",
                "code": "special_file",
                "reason": "a character device is not a file; it was not opened",
            }
        )
    try:
        report = run(session, card)
    finally:
        listener.close()
    assert report.imported == 2 and report.total == 2
    assert sorted(report.failures, key=lambda f: f["path"]) == sorted(expected, key=lambda f: f["path"])


def test_the_session_remembers_where_its_files_came_from(session, card):
    run(session, card, target_subdirectory="2024/italy")
    session.refresh_from_db()
    assert session.source_path == str(card)
    assert session.target_subdirectory == "2024/italy"
    assert ImageFile.objects.get(original_filename="IMG_002.jpg").relative_path == "photos/2024/italy/IMG_002.jpg"


def test_the_default_author_is_the_photos_author(session, card):
    from imports.models import Author

    session.default_author = Author.objects.create(name="Kari")
    session.save()
    run(session, card)
    assert set(Photo.objects.values_list("author__name", flat=True)) == {"Kari"}


def test_the_import_alone_writes_no_index_and_calls_its_hook_once_however_it_ends(session, card):
    """imports does the import; the indexes are the hook's (indexing/rewrite.py passes the writer)."""
    root = session.file_storage.full_path
    index = root / "imports" / f"session_{session.pk}.json"
    master_before = (root / "index.json").read_bytes()
    assert run(session, card).imported == 2
    assert not index.exists() and (root / "index.json").read_bytes() == master_before

    called = []
    report = run(session, card, on_finished=lambda s: called.append(s.pk))
    assert report.duplicates == 2 and called == [session.pk]

    calls = []

    def stop(**kwargs):  # the second report comes from within the import, past the walk: it stops there
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("the worker is going away")

    called.clear()
    with pytest.raises(RuntimeError):
        run(session, card, progress=stop, on_finished=lambda s: called.append(s.pk))
    assert called == [session.pk]  # an import that stops with an error still leaves its indexes written


def test_an_error_in_the_hook_never_fails_the_import(session, card, caplog):
    def broken(s):
        raise OSError(28, "No space left on device")

    report = run(session, card, on_finished=broken)
    assert report.imported == 2 and ImageFile.objects.filter(import_session=session).count() == 2
    assert "after the import into session" in caplog.text


def test_the_indexing_wrapper_writes_the_session_and_master_indexes(session, card):
    from indexing.rewrite import import_folder as import_with_indexes

    root = session.file_storage.full_path
    import_with_indexes(session_id=session.pk, source_path=str(card))
    index = (root / "imports" / f"session_{session.pk}.json").read_text()
    assert ImageFile.objects.get(original_filename="IMG_002.jpg").photo.hothash in index
    assert str(session.pk) in (root / "index.json").read_text()
