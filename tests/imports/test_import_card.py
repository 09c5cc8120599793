"""Everything on a card is archived (issue 16): videos beside photos, companions with their items, every
file's fate in the report, and "safe to format" only when the storage holds every file of the source.

The folders are built from both corpora: ../shared/corpus (stills) and ../shared/corpus-card (videos, XMP
sidecars, a motion photo).
"""

import json
import os
import shutil
from datetime import datetime, timezone
from io import BytesIO

import pytest
from PIL import Image

from imports.checksums import file_checksum
from imports.models import ImageFile, ImportSession, Photo, SourceEntry
from imports.verify import verify_source
from indexing.recovery import recover_from_indexes
from indexing.rewrite import import_folder, storage_create
from indexing.writer import write_storage_indexes
from storages.layout import FORMAT_VERSION, hotpreview_relative_path, session_index_file
from storages.models import FileStorage

pytestmark = pytest.mark.django_db

UTC = timezone.utc
AAE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict><key>adjustmentFormatIdentifier</key><string>com.apple.photo</string></dict></plist>
"""


def camera_folder(root, corpus, card):
    """A camera's DCIM folder: a JPEG and a RAW sharing a stem, both sidecar spellings, an MP4 with its .THM,
    and a MOV truncated to its header."""
    folder = root / "DCIM" / "100CANON"
    folder.mkdir(parents=True)
    shutil.copy(corpus / "raw/pair/canon_eos_6d.JPG", folder / "IMG_6D.JPG")
    shutil.copy(corpus / "raw/pair/canon_eos_6d.dng", folder / "IMG_6D.dng")
    shutil.copy(card / "sidecar/lightroom_utf16.xmp", folder / "IMG_6D.xmp")
    shutil.copy(card / "sidecar/exiv2_iso_array.xmp", folder / "IMG_6D.dng.xmp")
    shutil.copy(card / "video/quicktime.mp4", folder / "MVI_0001.MP4")
    shutil.copy(corpus / "jpeg/camera/jolla.jpg", folder / "MVI_0001.THM")
    shutil.copy(card / "video/pentax_320x240.mov", folder / "MVI_0002.MOV")
    return root


def phone_folder(root, corpus, card):
    """A phone's DCIM: a live photo (HEIC and MOV), its Apple edit, and a Samsung motion photo."""
    folder = root / "DCIM" / "Camera"
    folder.mkdir(parents=True)
    shutil.copy(corpus / "heic/iphone_15_pro.heic", folder / "IMG_1234.HEIC")
    shutil.copy(card / "video/quicktime.mp4", folder / "IMG_1234.MOV")
    (folder / "IMG_1234.AAE").write_bytes(AAE)
    shutil.copy(card / "motion/samsung-one-ui-6.heic", folder / "20240101_120000.heic")
    return root


def run_import(storage, source, title):
    session = ImportSession.objects.create(title=title, file_storage=storage)
    report = import_folder(session_id=session.pk, source_path=str(source))
    session.refresh_from_db()
    return session, report


def fates(session):
    return {e.path: (e.fate, e.role, e.code) for e in SourceEntry.objects.filter(import_session=session)}


@pytest.fixture
def storage(allowed_root):
    base = allowed_root / "drive"
    base.mkdir()
    return storage_create(base_path=str(base), display_name="Drive")


def test_a_camera_folder_is_archived_whole(storage, allowed_root, corpus, corpus_card):
    source = camera_folder(allowed_root / "camera", corpus, corpus_card)
    session, report = run_import(storage, source, "Camera")

    d = "DCIM/100CANON/"
    assert fates(session) == {
        d + "IMG_6D.JPG": ("archived", "original", ""),
        d + "IMG_6D.dng": ("archived", "original", ""),
        d + "IMG_6D.xmp": ("companion", "sidecar", ""),
        d + "IMG_6D.dng.xmp": ("companion", "sidecar", ""),
        d + "MVI_0001.MP4": ("archived", "original", ""),
        d + "MVI_0001.THM": ("companion", "thumbnail", ""),
        d + "MVI_0002.MOV": ("archived", "original", ""),
    }
    assert (report.total, report.imported, report.companions, report.failed, report.skipped) == (7, 7, 3, 0, 0)
    assert (report.photos_created, report.videos_created) == (1, 2)

    photo = Photo.objects.get(media_type="photo")
    assert {(f.original_filename, f.role) for f in photo.files.all()} == {
        ("IMG_6D.JPG", "original"),
        ("IMG_6D.dng", "original"),
        ("IMG_6D.xmp", "sidecar"),
        ("IMG_6D.dng.xmp", "sidecar"),
    }
    mp4 = ImageFile.objects.get(original_filename="MVI_0001.MP4").photo
    mov = ImageFile.objects.get(original_filename="MVI_0002.MOV").photo
    # Two different videos never share an item; each is known by its bytes.
    assert mp4.hothash == "video:" + file_checksum(source / d / "MVI_0001.MP4")
    assert mov.hothash == "video:" + file_checksum(source / d / "MVI_0002.MOV")
    assert (mp4.media_type, mp4.codec, mp4.width, mp4.height) == ("video", "mpeg4", 190, 240)
    assert mp4.duration_s == pytest.approx(5.0, abs=0.1)
    assert mp4.taken_at == datetime(2005, 10, 28, 17, 46, 46, tzinfo=UTC)  # the container's creation time
    assert mov.taken_at == datetime(2005, 8, 11, 14, 3, 54, tzinfo=UTC)
    assert {f.role for f in mp4.files.all()} == {"original", "thumbnail"}

    # The MP4 has a poster frame, on the drive and in the database; the truncated MOV has none, like a bare RAW.
    assert mp4.has_hotpreview
    poster = storage.full_path / hotpreview_relative_path(mp4.hothash)
    assert poster.read_bytes() == bytes(mp4.hotpreview) and ":" not in poster.name
    with Image.open(BytesIO(bytes(mp4.hotpreview))) as im:
        assert im.format == "JPEG" and max(im.size) == 200
    assert (mov.has_hotpreview, mov.hotpreview) == (False, None)

    # Every copy holds the bytes of its original.
    for f in ImageFile.objects.filter(import_session=session):
        assert file_checksum(storage.full_path / f.relative_path) == f.checksum

    write_storage_indexes(storage)
    index = json.loads((storage.full_path / session_index_file(session.pk)).read_text())
    assert index["statistics"]["format_version"] == FORMAT_VERSION == 2
    entry = index["files"][photo.hothash]
    assert (entry["media_type"], entry["original_filename"], entry["role"]) == ("photo", "IMG_6D.JPG", "original")
    assert sorted((c["original_filename"], c["role"]) for c in entry["companions"]) == [
        ("IMG_6D.dng", "original"),
        ("IMG_6D.dng.xmp", "sidecar"),
        ("IMG_6D.xmp", "sidecar"),
    ]
    video_entry = index["files"][mp4.hothash]
    assert (video_entry["media_type"], video_entry["codec"]) == ("video", "mpeg4")
    assert video_entry["duration_s"] == pytest.approx(5.0, abs=0.1)
    assert [(c["original_filename"], c["role"]) for c in video_entry["companions"]] == [("MVI_0001.THM", "thumbnail")]


def test_a_phone_folder_keeps_the_live_photo_together(storage, allowed_root, corpus, corpus_card):
    source = phone_folder(allowed_root / "phone", corpus, corpus_card)
    session, report = run_import(storage, source, "Phone")

    d = "DCIM/Camera/"
    assert fates(session) == {
        d + "IMG_1234.HEIC": ("archived", "original", ""),
        d + "IMG_1234.MOV": ("companion", "motion", ""),
        d + "IMG_1234.AAE": ("companion", "edit", ""),
        d + "20240101_120000.heic": ("archived", "original", ""),
    }
    assert (report.photos_created, report.videos_created, report.companions) == (2, 0, 2)
    live = ImageFile.objects.get(original_filename="IMG_1234.HEIC").photo
    assert {(f.original_filename, f.role) for f in live.files.all()} == {
        ("IMG_1234.HEIC", "original"),
        ("IMG_1234.MOV", "motion"),
        ("IMG_1234.AAE", "edit"),
    }
    motion_photo = ImageFile.objects.get(original_filename="20240101_120000.heic").photo
    assert motion_photo.media_type == "photo" and motion_photo.has_hotpreview
    # The motion photo is kept whole, its embedded video with it.
    stored = ImageFile.objects.get(original_filename="20240101_120000.heic")
    assert stored.file_size == os.path.getsize(corpus_card / "motion/samsung-one-ui-6.heic")


def test_a_file_that_is_not_media_is_listed_with_its_fate(storage, allowed_root, corpus):
    source = allowed_root / "notes"
    source.mkdir()
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", source / "DSCN0010.jpg")
    (source / "readme.txt").write_text("shot list for the wedding")
    (source / "IMG_9999.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")  # a sidecar without its photo
    session, report = run_import(storage, source, "Notes")

    assert fates(session) == {
        "DSCN0010.jpg": ("archived", "original", ""),
        "readme.txt": ("skipped", "original", "not_image"),
        "IMG_9999.xmp": ("skipped", "sidecar", "orphan_companion"),
    }
    assert (report.imported, report.skipped, report.failed) == (1, 2, 0)
    assert {f["path"] for f in report.skipped_files} == {"readme.txt", "IMG_9999.xmp"}
    assert all("left in the source" in f["reason"] for f in report.skipped_files)
    assert not list((storage.full_path / "photos").rglob("*.txt"))


def test_verify_source_is_safe_to_format_only_when_the_storage_has_every_file(storage, allowed_root, corpus):
    source = allowed_root / "card"
    source.mkdir()
    for name in ("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg"):
        shutil.copy(corpus / name, source)
    session, _ = run_import(storage, source, "Card")
    assert verify_source(session)["safe_to_format"] is True

    # A photo taken after the import is on the card and not in the storage.
    shutil.copy(corpus / "png/hopper.png", source / "late.png")
    verdict = verify_source(session)
    assert verdict["safe_to_format"] is False
    assert verdict["problems"] == [
        {"path": "late.png", "code": "not_archived", "reason": "no file with these bytes is in the storage"}
    ]
    assert (verdict["checked_files"], verdict["archived_files"], verdict["not_archived_files"]) == (3, 2, 1)

    run_import_again = import_folder(session_id=session.pk, source_path=str(source))
    assert run_import_again.imported == 1
    assert verify_source(session)["safe_to_format"] is True

    # A copy in the storage that no longer has the source's bytes is not safe either.
    copy = storage.full_path / ImageFile.objects.get(original_filename="jolla.jpg").relative_path
    copy.write_bytes(copy.read_bytes()[:-10])
    verdict = verify_source(session)
    assert verdict["safe_to_format"] is False
    assert [p["path"] for p in verdict["problems"]] == ["jolla.jpg"]
    assert "no longer has the same bytes" in verdict["problems"][0]["reason"]


def test_verify_source_through_the_api(celery_worker, api, storage, allowed_root, corpus):
    source = allowed_root / "card"
    source.mkdir()
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", source)
    (source / "todo.txt").write_text("not a photo")
    session, _ = run_import(storage, source, "Card")
    response = api.post(f"/api/v1/import-sessions/{session.pk}/verify-source", {})
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["safe_to_format"] is False
    assert [(p["path"], p["code"]) for p in data["problems"]] == [("todo.txt", "not_archived")]
    assert "left in the source" in data["problems"][0]["reason"]  # what the import said of it

    empty = ImportSession.objects.create(title="Nothing yet", file_storage=storage)
    response = api.post(f"/api/v1/import-sessions/{empty.pk}/verify-source", {})
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_source"


def test_recovery_from_the_indexes_alone_rebuilds_items_and_companions(storage, allowed_root, corpus, corpus_card):
    camera = camera_folder(allowed_root / "camera", corpus, corpus_card)
    phone = phone_folder(allowed_root / "phone", corpus, corpus_card)
    run_import(storage, camera, "Camera")
    run_import(storage, phone, "Phone")
    write_storage_indexes(storage)

    def snapshot():
        return {
            (f.relative_path, f.checksum, f.role, f.is_primary, f.photo.hothash, f.photo.media_type, f.photo.codec)
            for f in ImageFile.objects.select_related("photo")
        }

    before = snapshot()
    durations = dict(Photo.objects.values_list("hothash", "duration_s"))
    ImageFile.objects.all().delete()
    Photo.objects.all().delete()
    ImportSession.objects.all().delete()
    FileStorage.objects.all().delete()

    report = recover_from_indexes([str(allowed_root / "drive")])
    assert report.found == 1 and not report.storages[0]["problems"], report
    assert snapshot() == before
    assert dict(Photo.objects.values_list("hothash", "duration_s")) == durations
    assert Photo.objects.get(hothash__startswith="video:", has_hotpreview=True).hotpreview


def test_the_api_knows_videos(api, storage, allowed_root, corpus, corpus_card):
    run_import(storage, camera_folder(allowed_root / "camera", corpus, corpus_card), "Camera")
    stats = api.get(f"/api/v1/file-storage/{storage.storage_uuid}/statistics").json()["data"]["statistics"]
    assert (stats["photos"], stats["videos"], stats["total_files"]) == (3, 2, 7)

    videos = api.get("/api/v1/photos/?media_type=video").json()["data"]["photos"]
    assert sorted((v["media_type"], v["codec"]) for v in videos) == [("video", "mjpeg"), ("video", "mpeg4")]
    assert {p["media_type"] for p in api.get("/api/v1/photos/?media_type=photo").json()["data"]["photos"]} == {"photo"}
    assert api.get("/api/v1/photos/?media_type=film").status_code == 422

    mp4 = next(v for v in videos if v["codec"] == "mpeg4")
    detail = api.get(f"/api/v1/photos/{mp4['hothash']}").json()["data"]
    assert detail["duration_s"] == pytest.approx(5.0, abs=0.1)
    assert sorted(f["role"] for f in detail["files"]) == ["original", "thumbnail"]
    assert api.get(f"/api/v1/photos/{mp4['hothash']}/hotpreview").status_code == 200


def test_the_whole_card_corpus_is_imported_as_its_manifest_says(storage, allowed_root, corpus_card):
    """../shared/corpus-card as it is: every video archived (a poster only where a frame decodes), the motion photo
    one photo, and the two sidecars, which have no photo beside them there, skipped with that reason."""
    source = allowed_root / "corpus-card"
    shutil.copytree(corpus_card, source, ignore=shutil.ignore_patterns("*.tsv", "*.md"))
    with open(corpus_card / "MANIFEST.tsv") as handle:
        paths = [line.split("\t")[0] for line in handle.read().splitlines()[1:] if line]
    session, report = run_import(storage, source, "Card corpus")

    found = fates(session)
    assert set(found) == set(paths) and report.total == len(paths)
    for path in paths:
        if path.startswith("sidecar/"):
            assert found[path] == ("skipped", "sidecar", "orphan_companion"), path
        else:
            assert found[path] == ("archived", "original", ""), path
    videos = {f.original_filename: f.photo for f in ImageFile.objects.filter(photo__media_type="video")}
    assert set(videos) == {"quicktime.mp4", "10min.mkv", "pentax_320x240.mov", "smallville.s03e02.avi"}
    assert {name for name, item in videos.items() if item.has_hotpreview} == {"quicktime.mp4", "10min.mkv"}
    assert videos["10min.mkv"].duration_s == pytest.approx(600, abs=1)
    assert ImageFile.objects.get(original_filename="samsung-one-ui-6.heic").photo.media_type == "photo"
