"""Sidecars change, and that is not damage (issue 16): scans and validation read them again, follow them when
they move with their photo, and apply what they say unless the user changed the photo in ImaLink since.
"""

import os
import shutil
import time
from datetime import datetime, timedelta
from datetime import timezone as tz

import pyexiv2
import pytest

from imports.checksums import file_checksum
from imports.models import ImageFile, ImportSession, Photo
from imports.xmp import merge_xmp, read_xmp
from indexing.rewrite import import_folder, storage_create
from indexing.scanner import scan_storage
from indexing.validation import validate_storage

pytestmark = pytest.mark.django_db


def edit_with_another_program(path, rating: int, keyword: str) -> None:
    """What Lightroom or darktable does: rewrite the sidecar in place (here with exiv2, through pyexiv2)."""
    with pyexiv2.ImageData(path.read_bytes()) as sidecar:
        sidecar.modify_xmp({"Xmp.xmp.Rating": str(rating), "Xmp.dc.subject": [keyword]})
        data = sidecar.get_bytes()
    path.write_bytes(data)
    future = time.time() + 5  # a later time than the import's, as a later edit has
    os.utime(path, (future, future))


@pytest.fixture
def imported(allowed_root, corpus):
    base = allowed_root / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Drive")
    card = allowed_root / "card"
    card.mkdir()
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", card / "IMG_1.jpg")
    (card / "IMG_1.xmp").write_bytes(merge_xmp(None, rating=2, keywords=["beach"], title="First light", description=""))
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    return storage, session


def test_the_import_reads_the_sidecar(imported):
    photo = Photo.objects.get()
    assert (photo.rating, photo.tags, photo.title) == (2, ["beach"], "First light")
    assert ImageFile.objects.get(original_filename="IMG_1.xmp").role == "sidecar"


def test_a_photo_and_its_sidecar_moved_and_the_sidecar_edited_is_one_move_and_nothing_modified(imported):
    storage, _ = imported
    root = storage.full_path
    (root / "photos/best").mkdir()
    (root / "photos/IMG_1.jpg").rename(root / "photos/best/IMG_1.jpg")
    (root / "photos/IMG_1.xmp").rename(root / "photos/best/IMG_1.xmp")
    edit_with_another_program(root / "photos/best/IMG_1.xmp", 5, "sunset")

    report = scan_storage(storage)

    assert [(m["old_path"], m["new_path"]) for m in report.moved_files] == [
        ("photos/IMG_1.jpg", "photos/best/IMG_1.jpg")
    ]
    assert (report.modified_files, report.missing_files, report.new_files) == ([], [], [])
    assert [(s["old_path"], s["path"], s["applied"]) for s in report.sidecars_updated] == [
        ("photos/IMG_1.xmp", "photos/best/IMG_1.xmp", True)
    ]
    sidecar = ImageFile.objects.get(role="sidecar")
    assert sidecar.relative_path == "photos/best/IMG_1.xmp" and sidecar.status == "present"
    assert sidecar.checksum == file_checksum(root / "photos/best/IMG_1.xmp")
    photo = Photo.objects.get()
    assert (photo.rating, photo.tags) == (5, ["sunset"])

    again = scan_storage(storage)  # the new checksum is recorded: the next scan sees nothing
    assert not again.changes_detected


def test_a_sidecar_edited_in_place_is_read_again_and_validation_calls_it_no_damage(imported):
    storage, _ = imported
    path = storage.full_path / "photos/IMG_1.xmp"
    edit_with_another_program(path, 4, "dunes")

    quick = validate_storage(storage, mode="quick")
    assert quick.is_clean and quick.flagged_files == 0
    assert [(s["path"], s["recorded"]) for s in quick.sidecars_changed] == [("photos/IMG_1.xmp", False)]

    full = validate_storage(storage, mode="full", from_drive=False)
    assert full.is_clean and full.corrupted_files == [] and full.flagged_files == 0
    assert [(s["path"], s["recorded"]) for s in full.sidecars_changed] == [("photos/IMG_1.xmp", True)]
    assert ImageFile.objects.get(role="sidecar").checksum == file_checksum(path)
    assert Photo.objects.get().rating == 4

    edit_with_another_program(path, 1, "rain")
    report = scan_storage(storage)
    assert report.modified_files == [] and [s["applied"] for s in report.sidecars_updated] == [True]
    assert (Photo.objects.get().rating, Photo.objects.get().tags) == (1, ["rain"])
    assert ImageFile.objects.get(role="sidecar").status == "present"


def test_an_older_sidecar_never_overwrites_a_change_made_in_imalink(imported):
    storage, _ = imported
    path = storage.full_path / "photos/IMG_1.xmp"
    edit_with_another_program(path, 4, "dunes")
    # The user rated the photo in ImaLink after the sidecar was last written.
    sidecar_time = datetime.fromtimestamp(path.stat().st_mtime, tz=tz.utc)
    Photo.objects.update(rating=3, tags=["mine"], metadata_edited_at=sidecar_time + timedelta(minutes=1))

    report = scan_storage(storage)
    assert [(s["applied"], s["reason"]) for s in report.sidecars_updated] == [
        (False, "older than the last change made in ImaLink, which is kept")
    ]
    assert (Photo.objects.get().rating, Photo.objects.get().tags) == (3, ["mine"])
    assert ImageFile.objects.get(role="sidecar").checksum == file_checksum(path)  # its bytes are recorded all the same
    assert read_xmp(path.read_bytes()).rating == 4  # and the sidecar is left as it is


def test_a_missing_sidecar_is_still_missing(imported):
    storage, _ = imported
    (storage.full_path / "photos/IMG_1.xmp").unlink()
    report = scan_storage(storage)
    assert [m["path"] for m in report.missing_files] == ["photos/IMG_1.xmp"]
    assert report.sidecars_updated == []
    assert ImageFile.objects.get(role="sidecar").status == "missing"
