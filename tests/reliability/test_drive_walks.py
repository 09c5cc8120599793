"""The scan, the validation and the import's copy touch a storage only through storages.drive (issue 13).

A drive is hostile input, ImaLink's own folders on it included: a symbolic link, a named pipe, a folder where
a row's file belongs or a file where its folder belongs makes the storage unsafe (409, reason_code
unsafe_layout). Nothing is followed, nothing blocks, nothing off the drive is read, written or deleted, and
no row is changed on the word of a walk that met such a thing.
"""

import os
import shutil
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from imalink.errors import StorageUnavailable
from imports.copying import clean_tmp, copy_verified
from imports.models import ImageFile, ImportSession
from imports.pipeline import _Worker
from indexing.rewrite import import_folder
from indexing.scanner import scan_storage
from indexing.validation import validate_storage
from storages.drive import Storage, UnsafeLayout
from storages.layout import hotpreview_relative_path
from tests.conftest import imported_storage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture
def drive(allowed_root, corpus):
    return imported_storage(allowed_root, corpus)


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not the user's drive")
    (folder / "import-x.part").write_bytes(b"a file off the drive that clean_tmp must never delete")
    return folder


def rows(storage) -> list[tuple]:
    return sorted(
        ImageFile.objects.filter(file_storage=storage).values_list(
            "id", "relative_path", "status", "mtime_ns", "checksum"
        )
    )


def outside_state(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def assert_unsafe(raised, storage) -> None:
    """A 409 storage_unavailable whose reason_code is unsafe_layout, and the storage recorded as unavailable."""
    assert isinstance(raised.value, StorageUnavailable)
    assert raised.value.details["reason_code"] == "unsafe_layout", raised.value.details
    storage.refresh_from_db()
    assert storage.is_accessible is False and storage.accessibility_reason


def a_folder_of_rows(storage) -> str:
    """The folder (storage-relative, below photos/) holding the first row's file."""
    first = sorted(ImageFile.objects.filter(file_storage=storage).values_list("relative_path", flat=True))[0]
    return str(PurePosixPath(first).parent)


def test_a_symlink_to_an_outside_folder_under_photos_makes_the_scan_refuse_and_marks_nothing_missing(drive, outside):
    storage, _ = drive
    before, seen = rows(storage), outside_state(outside)
    (storage.full_path / a_folder_of_rows(storage) / "sub").symlink_to(outside, target_is_directory=True)

    with pytest.raises(StorageUnavailable) as raised:
        scan_storage(storage)
    assert_unsafe(raised, storage)
    assert rows(storage) == before, "a row changed on the word of an unsafe walk"
    assert outside_state(outside) == seen
    with pytest.raises(StorageUnavailable):
        validate_storage(storage, mode="full")
    assert rows(storage) == before


def test_a_symlink_in_place_of_a_photo_folder_is_not_walked_and_its_rows_stay_present(drive, outside):
    storage, _ = drive
    before = rows(storage)
    folder = storage.full_path / a_folder_of_rows(storage)
    shutil.copytree(folder, outside / "copy")
    shutil.rmtree(folder)
    folder.symlink_to(outside / "copy", target_is_directory=True)  # the same bytes, but off the drive

    with pytest.raises(StorageUnavailable) as raised:
        scan_storage(storage)
    assert_unsafe(raised, storage)
    assert rows(storage) == before


@pytest.mark.parametrize("check", ["scan", "quick validation", "full validation"])
def test_a_named_pipe_under_photos_never_blocks_and_makes_the_storage_unsafe(drive, check):
    storage, _ = drive
    before = rows(storage)
    os.mkfifo(storage.full_path / a_folder_of_rows(storage) / "x.jpg")

    with pytest.raises(StorageUnavailable) as raised:
        if check == "scan":
            scan_storage(storage)
        else:
            validate_storage(storage, mode=check.split()[0])
    assert_unsafe(raised, storage)
    assert "named pipe" in raised.value.message
    assert rows(storage) == before


@pytest.mark.parametrize("check", ["scan", "quick validation", "full validation"])
def test_a_folder_where_a_rows_file_belongs_is_unsafe_and_no_row_changes(drive, check):
    storage, _ = drive
    before = rows(storage)
    target = storage.full_path / sorted(r[1] for r in before)[0]
    target.unlink()
    target.mkdir()

    with pytest.raises(StorageUnavailable) as raised:
        if check == "scan":
            scan_storage(storage)
        else:
            validate_storage(storage, mode=check.split()[0])
    assert_unsafe(raised, storage)
    assert rows(storage) == before, "the row was marked missing although a folder stands at its path"


def test_a_file_where_the_rows_folder_belongs_is_unsafe_and_no_row_changes(drive):
    storage, _ = drive
    before = rows(storage)
    folder = storage.full_path / a_folder_of_rows(storage)
    shutil.rmtree(folder)
    folder.write_bytes(b"a plain file where the photos' folder was")

    with pytest.raises(StorageUnavailable) as raised:
        scan_storage(storage)
    assert_unsafe(raised, storage)
    assert rows(storage) == before


def test_a_scan_of_a_safe_storage_still_finds_moves_through_descriptors(drive):
    storage, _ = drive
    first = sorted(r[1] for r in rows(storage))[0]
    (storage.full_path / "photos" / "elsewhere").mkdir()
    (storage.full_path / first).rename(storage.full_path / "photos" / "elsewhere" / PurePosixPath(first).name)

    report = scan_storage(storage)
    assert [m["old_path"] for m in report.moved_files] == [first]
    assert report.missing_files == [] and report.bytes_read > 0


def test_a_tmp_folder_that_links_off_the_drive_is_refused_and_nothing_outside_is_deleted(
    drive, outside, allowed_root, corpus
):
    storage, _ = drive
    tmp = storage.full_path / ".imalink" / "tmp"
    shutil.rmtree(tmp)
    tmp.symlink_to(outside, target_is_directory=True)
    seen = outside_state(outside)

    with pytest.raises(UnsafeLayout):
        clean_tmp(storage.full_path)
    assert outside_state(outside) == seen, "clean_tmp deleted a file off the drive"

    card = allowed_root / "card2"
    card.mkdir()
    shutil.copy(corpus / "png/hopper.png", card / "other.png")
    with pytest.raises(UnsafeLayout):
        copy_verified(
            card / "other.png",
            checksum="0" * 32,
            size=1,
            root=storage.full_path,
            relative=PurePosixPath("photos/new/other.png"),
            taken_paths=set(),
        )
    session = ImportSession.objects.create(title="Second card", file_storage=storage)
    with pytest.raises(StorageUnavailable) as raised:
        import_folder(session_id=session.pk, source_path=str(card))
    assert raised.value.details["reason_code"] == "unsafe_layout"
    assert outside_state(outside) == seen, "an import wrote or deleted off the drive"


def test_a_link_at_a_copys_destination_name_is_refused_not_written_through(drive, outside, allowed_root, corpus):
    storage, _ = drive
    from imports.checksums import file_checksum

    card = allowed_root / "card3"
    card.mkdir()
    source = card / "new.png"
    shutil.copy(corpus / "png/hopper.png", source)
    (storage.full_path / "photos" / "dest").mkdir()
    (storage.full_path / "photos" / "dest" / "new.png").symlink_to(outside / "holiday.jpg")
    seen = outside_state(outside)

    with pytest.raises(UnsafeLayout):
        copy_verified(
            source,
            checksum=file_checksum(source),
            size=source.stat().st_size,
            root=storage.full_path,
            relative=PurePosixPath("photos/dest/new.png"),
            taken_paths=set(),
        )
    assert outside_state(outside) == seen
    assert os.listdir(storage.full_path / ".imalink" / "tmp") == [], "the temporary copy was left behind"


def test_a_hotpreview_fan_out_folder_that_links_off_the_drive_gets_nothing_written_through_it(drive, outside):
    storage, _ = drive
    root = storage.full_path
    hothash = "ab" + "cd" + "0" * 60
    relative = Path(hotpreview_relative_path(hothash))
    (root / relative.parent.parent).mkdir(parents=True, exist_ok=True)
    (root / relative.parent).symlink_to(outside, target_is_directory=True)
    seen = outside_state(outside)

    worker = _Worker(root=root, target=PurePosixPath(), claims=None, max_pixels=10_000_000)
    with pytest.raises(UnsafeLayout):
        worker._store_hotpreview(SimpleNamespace(hothash=hothash, hotpreview=b"\xff\xd8 a preview"))
    assert outside_state(outside) == seen, "a hotpreview was written off the drive"


def test_a_hotpreview_that_is_a_link_is_refused_not_taken_for_one_already_there(drive, outside):
    storage, _ = drive
    root = storage.full_path
    hothash = "ef" + "01" + "0" * 60
    path = root / hotpreview_relative_path(hothash)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside / "holiday.jpg")

    worker = _Worker(root=root, target=PurePosixPath(), claims=None, max_pixels=10_000_000)
    with pytest.raises(UnsafeLayout):
        worker._store_hotpreview(SimpleNamespace(hothash=hothash, hotpreview=b"\xff\xd8 a preview"))
    assert (outside / "holiday.jpg").read_bytes() == b"not the user's drive"


def test_a_verified_copy_reads_a_descriptor_opened_through_another_storage(tmp_path):
    """Replication and repair copy from a file of another storage opened with nothing followed (issue 17)."""
    from imports.checksums import file_checksum

    source_root, target_root = tmp_path / "a", tmp_path / "b"
    (source_root / "photos").mkdir(parents=True)
    (target_root / "photos").mkdir(parents=True)
    (target_root / ".imalink/tmp").mkdir(parents=True)
    original = source_root / "photos/x.jpg"
    original.write_bytes(b"\xff\xd8" + os.urandom(200_000))
    checksum, size = file_checksum(original), original.stat().st_size
    with Storage(source_root) as source:
        fd, _ = source.open_read("photos/x.jpg")
        placed = copy_verified(
            fd,
            checksum=checksum,
            size=size,
            root=target_root,
            relative=PurePosixPath("photos/x.jpg"),
            taken_paths=set(),
        )
        assert placed == ("photos/x.jpg", True)
        with pytest.raises(OSError):
            os.fstat(fd)  # the copy closed it
        fd, _ = source.open_read("photos/x.jpg")
        placed = copy_verified(
            fd,
            checksum=checksum,
            size=size,
            root=target_root,
            relative=PurePosixPath("photos/x.jpg"),
            taken_paths=set(),
        )
        assert placed == ("photos/x.jpg", False)  # already there: nothing copied, and the descriptor closed
        with pytest.raises(OSError):
            os.fstat(fd)
    assert file_checksum(target_root / "photos/x.jpg") == checksum
