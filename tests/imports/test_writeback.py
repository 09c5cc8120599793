"""XMP metadata out, when the user asks for it (issue 16): a storage set to write sidecars gets the photo's
rating, tags, title and description in its sidecar; originals are never written; a drive that cannot take the
write says so.
"""

import json
import os
import shutil
import subprocess

import pyexiv2
import pytest

from imports.checksums import file_checksum
from imports.models import ImageFile, ImportSession, Photo
from imports.xmp import read_xmp
from indexing.rewrite import import_folder, storage_create
from indexing.scanner import scan_storage
from tests.conftest import require

pytestmark = pytest.mark.django_db


def exiv2_reads(path) -> dict:
    """What the exiv2 command-line tool (a separate program from the library ImaLink uses) reads of a sidecar."""
    exiv2 = shutil.which("exiv2")
    require(exiv2 is not None, "the exiv2 command (make test installs Debian's exiv2)")
    out = subprocess.run([exiv2, "-PXkv", str(path)], capture_output=True, text=True, check=True).stdout
    values = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        values[key] = value.strip()
    return values


def import_card(base, card, storage=None, writeback="sidecars"):
    storage = storage or storage_create(base_path=str(base), display_name="Drive")
    storage.xmp_writeback = writeback
    storage.save()
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    return storage


def update(api, photo, **changes):
    response = api.put(f"/api/v1/photos/{photo.hothash}", changes)
    assert response.status_code == 200, response.content
    return response.json()["data"]


@pytest.fixture
def card(allowed_root, corpus):
    card = allowed_root / "card"
    card.mkdir()
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", card / "IMG_1.jpg")
    return card


def test_the_setting_is_off_by_default_and_nothing_is_written(api, allowed_root, card):
    base = allowed_root / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Drive")
    assert storage.xmp_writeback == "off"
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    data = update(api, Photo.objects.get(), rating=4)
    assert data["sidecar_writes"] == []
    assert not list((storage.full_path / "photos").glob("*.xmp"))


def test_the_setting_is_changed_through_the_api(api, allowed_root):
    base = allowed_root / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Drive")
    response = api.put(f"/api/v1/file-storage/{storage.storage_uuid}", {"xmp_writeback": "sidecars"})
    assert response.status_code == 200 and response.json()["data"]["xmp_writeback"] == "sidecars"
    response = api.put(f"/api/v1/file-storage/{storage.storage_uuid}", {"xmp_writeback": "always"})
    assert response.status_code == 422


def test_a_change_creates_a_sidecar_that_exiv2_and_the_library_read_back(api, allowed_root, card):
    base = allowed_root / "drive"
    base.mkdir()
    storage = import_card(base, card)
    original = storage.full_path / "photos/IMG_1.jpg"
    before = file_checksum(original)

    data = update(
        api, Photo.objects.get(), rating=4, tags=["fjord", "ferje"], title="Morning", description="Bergen, før seks"
    )

    sidecar = storage.full_path / "photos/IMG_1.xmp"
    assert data["sidecar_writes"] == [
        {"storage_uuid": str(storage.storage_uuid), "status": "written", "path": "photos/IMG_1.xmp", "reason": ""}
    ]
    fields = read_xmp(sidecar.read_bytes())
    assert (fields.rating, fields.keywords, fields.title, fields.description) == (
        4,
        ("fjord", "ferje"),
        "Morning",
        "Bergen, før seks",
    )
    with pyexiv2.ImageData(sidecar.read_bytes()) as image:
        assert image.read_xmp()["Xmp.xmp.Rating"] == "4"
    seen = exiv2_reads(sidecar)
    assert seen["Xmp.xmp.Rating"] == "4" and "Morning" in seen["Xmp.dc.title"]
    assert "fjord" in seen["Xmp.dc.subject"] and "ferje" in seen["Xmp.dc.subject"]

    assert file_checksum(original) == before  # the original is never written
    row = ImageFile.objects.get(role="sidecar")
    assert (row.relative_path, row.checksum) == ("photos/IMG_1.xmp", file_checksum(sidecar))
    assert not scan_storage(storage).changes_detected  # its checksum is recorded: nothing changed for a scan


def test_a_merge_into_the_lightroom_sidecar_keeps_its_other_fields(api, allowed_root, card, corpus_card):
    shutil.copy(corpus_card / "sidecar/lightroom_utf16.xmp", card / "IMG_1.xmp")
    base = allowed_root / "drive"
    base.mkdir()
    storage = import_card(base, card)
    sidecar = storage.full_path / "photos/IMG_1.xmp"
    old = sidecar.read_bytes()
    with pyexiv2.ImageData(old.decode("utf-16").encode("utf-8").replace(b'encoding="UTF-16"', b"")) as image:
        theirs = image.read_xmp()

    update(api, Photo.objects.get(), rating=3, tags=["archive"], title="Slide", description="")

    with pyexiv2.ImageData(sidecar.read_bytes()) as image:
        merged = image.read_xmp()
    owned = ("Xmp.xmp.Rating", "Xmp.dc.subject", "Xmp.dc.title", "Xmp.dc.description")
    assert {k: v for k, v in merged.items() if k not in owned} == {k: v for k, v in theirs.items() if k not in owned}
    assert merged["Xmp.xmp.Rating"] == "3" and "Xmp.xmp.CreateDate" in merged
    # The sidecar as it was is kept, byte for byte, before it is replaced.
    kept = list((storage.full_path / ".imalink/quarantine").rglob("IMG_1.xmp"))
    assert len(kept) == 1 and kept[0].read_bytes() == old
    assert ImageFile.objects.get(role="sidecar").checksum == file_checksum(sidecar)


def test_a_read_only_drive_refuses_visibly(api, allowed_root, card, write_protectable_drive):
    drive, protect = write_protectable_drive
    storage = import_card(drive, card)
    protect()
    photo = Photo.objects.get()
    data = update(api, photo, rating=5)
    [answer] = data["sidecar_writes"]
    assert answer["status"] == "not_written", answer
    assert answer["reason"].startswith("The sidecar was not written. Storage 'Drive' is unavailable")
    assert "read-only" in answer["reason"]
    assert Photo.objects.get().rating == 5  # the change itself is kept in ImaLink
    assert not (storage.full_path / "photos/IMG_1.xmp").exists()
    assert not ImageFile.objects.filter(role="sidecar").exists()
    json.dumps(data)  # the answer is plain JSON
    assert os.path.exists(storage.full_path / "photos/IMG_1.jpg")


def test_a_storage_busy_with_a_job_gets_no_sidecar_and_says_so(api, allowed_root, card, monkeypatch):
    from imports import writeback
    from storages.locks import storage_lock

    base = allowed_root / "drive"
    base.mkdir()
    storage = import_card(base, card)
    monkeypatch.setattr(writeback, "LOCK_WAIT_S", 0.2)
    with storage_lock(storage):  # what an import, scan or validation of this storage holds while it runs
        data = update(api, Photo.objects.get(), rating=2)
    [answer] = data["sidecar_writes"]
    assert answer["status"] == "not_written" and "busy" in answer["reason"], answer
    assert not (storage.full_path / "photos/IMG_1.xmp").exists()
    assert update(api, Photo.objects.get(), rating=3)["sidecar_writes"][0]["status"] == "written"


def test_a_file_that_appears_at_the_new_sidecars_name_is_never_replaced(api, allowed_root, card, monkeypatch):
    from imports import writeback

    base = allowed_root / "drive"
    base.mkdir()
    storage = import_card(base, card)
    theirs = storage.full_path / "photos/IMG_1.xmp"
    chosen = writeback._new_sidecar_path

    def chosen_then_written_by_someone_else(opened, original):
        name = chosen(opened, original)
        theirs.write_bytes(b"<x:xmpmeta>written by another program meanwhile</x:xmpmeta>")
        return name

    monkeypatch.setattr(writeback, "_new_sidecar_path", chosen_then_written_by_someone_else)
    data = update(api, Photo.objects.get(), rating=4)
    [answer] = data["sidecar_writes"]
    assert answer["status"] == "not_written", answer
    assert theirs.read_bytes() == b"<x:xmpmeta>written by another program meanwhile</x:xmpmeta>"
    assert not ImageFile.objects.filter(role="sidecar").exists()
    assert not [p for p in (storage.full_path / "photos").iterdir() if p.name.endswith(".tmp")]
