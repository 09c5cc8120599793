"""Importing a copy of the whole corpus: every file checked against MANIFEST.tsv (issue 3's acceptance).

Valid images are archived with their metadata and a hotpreview; bad files fail with a reason that names the
problem and leave nothing behind; RAW files with stripped data are archived without a preview.
"""

import csv
import os
import shutil
from io import BytesIO

import pytest
from PIL import Image

from imports.checksums import file_checksum
from imports.models import ImageFile, ImportSession, Photo
from indexing.rewrite import import_folder
from storages.layout import hotpreview_relative_path
from storages.models import FileStorage

pytestmark = pytest.mark.django_db

FAILURE_WORDS = {
    "bad/zero_byte": ("empty",),
    "bad/not_image": ("not_image",),
    "bad/bomb": ("bomb",),
    "bad/truncated": ("truncated", "corrupt"),
    "bad/corrupt": ("corrupt", "not_image", "truncated"),
}


def manifest(corpus):
    with open(corpus / "MANIFEST.tsv", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture
def imported(corpus, allowed_root, make_storage, tmp_path):
    """The corpus copied to a 'memory card' and imported into a fresh storage under 2024/corpus."""
    card = allowed_root / "card"
    shutil.copytree(corpus, card, ignore=shutil.ignore_patterns("*.tsv", "*.md"))
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    session = ImportSession.objects.create(title="Corpus", file_storage=storage)
    report = import_folder(session_id=session.pk, source_path=str(card), target_subdirectory="2024/corpus")
    return storage, session, report, manifest(corpus)


def test_every_corpus_file_is_archived_or_failed_as_the_manifest_says(imported):
    storage, session, report, rows = imported
    # A file that is not media by its content is skipped (left in the source), the others that fail are failed.
    failures = {f["path"]: f for f in report.failures + report.skipped_files}
    stored = {f.relative_path: f for f in ImageFile.objects.filter(import_session=session)}
    assert report.total == len(rows)
    for path, row in rows.items():
        target = f"photos/2024/corpus/{path}"
        group = "/".join(path.split("/")[:2])
        if path.startswith("bad/") and group != "bad/wrong_extension":
            assert path in failures, f"{path} should have failed"
            failure = failures[path]
            assert failure["code"] in FAILURE_WORDS[group], (path, failure)
            assert failure["reason"].startswith(failure["code"]) or failure["code"] in failure["reason"], failure
            assert not (storage.full_path / target).exists(), f"{path} left a copy in photos/"
        else:
            assert path not in failures, (path, failures.get(path))
            assert target in stored, f"{path} was not archived"
    assert report.imported == len(stored) == len(rows) - report.failed - report.skipped
    assert all(f["code"] == "not_image" for f in report.skipped_files)
    assert report.failed + report.skipped == sum(
        1 for p in rows if p.startswith("bad/") and not p.startswith("bad/wrong_extension")
    )


def test_nothing_is_half_written(imported):
    storage, session, _, _ = imported
    root = storage.full_path
    assert os.listdir(root / ".imalink" / "tmp") == []
    on_disk = {p.relative_to(root).as_posix() for p in (root / "photos").rglob("*") if p.is_file()}
    rows = {f.relative_path: f for f in ImageFile.objects.filter(file_storage=storage)}
    assert on_disk == set(rows)
    for relative, row in rows.items():
        assert file_checksum(root / relative) == row.checksum
        assert os.path.getsize(root / relative) == row.file_size


def test_copies_keep_the_bytes_and_time_of_the_original(imported, corpus):
    storage, session, _, _ = imported
    for row in ImageFile.objects.filter(import_session=session):
        original = corpus / row.relative_path.removeprefix("photos/2024/corpus/")
        assert file_checksum(original) == row.checksum
        assert os.stat(storage.full_path / row.relative_path).st_mtime_ns == os.stat(original).st_mtime_ns


def test_content_decides_the_format(imported):
    _, session, _, _ = imported
    formats = dict(ImageFile.objects.filter(import_session=session).values_list("original_filename", "file_format"))
    assert formats["Issue_247-1.nef"] == "jpeg"
    assert formats["wrong.heic"] == "jpeg"
    assert formats["IMG_2682.heic"] == "heic"
    assert formats["hopper.png"] == "png"
    assert formats["fujifilm.mpo"] in ("mpo", "jpeg")


def test_metadata_is_learned(imported):
    _, session, _, _ = imported

    def photo(name):
        return ImageFile.objects.get(import_session=session, original_filename=name).photo

    gps = photo("DSCN0010.jpg")
    assert gps.gps_latitude == pytest.approx(43.4674, abs=1e-3) and gps.gps_longitude == pytest.approx(
        11.8851, abs=1e-3
    )
    assert gps.camera_make.upper().startswith("NIKON") and gps.taken_at.year == 2008
    assert photo("empty_gps.jpg").gps_latitude is None
    sony = photo("20250112_171126.JPG")
    assert (sony.camera_make, sony.camera_model) == ("Sony", "XQ-BC52")
    assert (sony.width, sony.height) == (2688, 4032)  # orientation 6: portrait after rotation
    assert photo("date-priority-test.jpg").taken_at.isoformat().startswith("2023-02-02T02:00:00")
    assert photo("orientation_rectangle.jpg").width == 1 and photo("orientation_rectangle.jpg").height == 2


def test_hotpreviews_are_upright_and_on_disk_and_in_the_database(imported):
    storage, session, _, _ = imported
    reference = None
    for n in range(1, 9):
        p = ImageFile.objects.get(import_session=session, original_filename=f"landscape_{n}.jpg").photo
        image = Image.open(BytesIO(bytes(p.hotpreview)))
        assert image.width > image.height, f"landscape_{n} preview is not landscape"
        on_disk = storage.full_path / hotpreview_relative_path(p.hothash)
        assert on_disk.read_bytes() == bytes(p.hotpreview)
        pixels = image.convert("L").resize((32, 24))
        if reference is None:
            reference = pixels
        else:
            diff = sum(abs(a - b) for a, b in zip(pixels.getdata(), reference.getdata())) / (32 * 24)
            assert diff < 20, f"landscape_{n} preview does not match landscape_1 (mean diff {diff:.1f})"
    heic = ImageFile.objects.get(import_session=session, original_filename="iphone_7.heic").photo
    assert heic.height > heic.width  # original_orientation honoured


def test_a_raw_and_its_jpeg_become_one_photo_with_the_jpeg_primary(imported):
    _, session, _, _ = imported
    jpeg = ImageFile.objects.get(import_session=session, original_filename="canon_eos_6d.JPG")
    raw = ImageFile.objects.get(import_session=session, original_filename="canon_eos_6d.dng")
    assert jpeg.photo_id == raw.photo_id
    assert jpeg.is_primary and not raw.is_primary
    assert raw.file_format == "dng"


def test_stripped_and_truncated_raws_are_archived_without_a_preview(imported, corpus):
    _, session, _, rows = imported
    for path in rows:
        if not path.startswith(("raw/metadata_only/", "raw/truncated/")):
            continue
        row = ImageFile.objects.get(import_session=session, relative_path=f"photos/2024/corpus/{path}")
        if not row.photo.has_hotpreview:
            assert row.photo.hothash == f"raw:{row.checksum}"
            assert row.photo.hotpreview is None


def test_importing_the_same_folder_again_imports_nothing(imported, allowed_root):
    storage, session, first, _ = imported
    again = import_folder(
        session_id=session.pk, source_path=str(allowed_root / "card"), target_subdirectory="2024/corpus"
    )
    assert again.imported == 0
    assert again.duplicates == first.imported
    assert again.failed == first.failed  # bad files are still bad, and still reported
    assert ImageFile.objects.filter(file_storage=storage).count() == first.imported
    assert Photo.objects.count() == first.photos_created


def test_the_session_and_master_indexes_are_written(imported):
    import json

    storage, session, report, _ = imported
    index = json.loads((storage.full_path / f"imports/session_{session.pk}.json").read_text())
    assert index["import_session"]["id"] == session.pk
    assert index["statistics"]["total_files"] == report.imported
    pair = next(e for e in index["files"].values() if e["original_filename"] == "canon_eos_6d.JPG")
    assert [c["original_filename"] for c in pair["companions"]] == ["canon_eos_6d.dng"]
    assert pair["checksum"].startswith("xxh3_128:")
    master = json.loads((storage.full_path / "index.json").read_text())
    assert master["import_sessions"][0]["index_file"] == f"imports/session_{session.pk}.json"
    assert master["storage_info"]["total_files"] == report.imported
