"""What today's main wrote before issue 16 still reads (issue 16's acceptance): a database migrates with every
photo keeping its hothash and every file becoming an original, and a format 1 session index recovers.
"""

import datetime
import json
import shutil

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from imalink.triggers import installed_triggers
from imports.models import ImageFile, ImportSession, Photo
from indexing.recovery import recover_from_indexes
from indexing.rewrite import import_folder, storage_create
from indexing.writer import write_storage_indexes
from storages.layout import session_index_file
from storages.models import FileStorage

BEFORE = {"storages": "0001_initial", "imports": "0002_file_totals"}
AT = datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.UTC)


def leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def migrate(transactional_db):
    def _migrate(nodes):
        MigrationExecutor(connection).migrate(nodes)
        return MigrationExecutor(connection).loader.project_state(nodes).apps

    try:
        yield _migrate
    finally:
        MigrationExecutor(connection).migrate(leaf_nodes())


def test_a_database_from_before_videos_migrates_with_every_photo_and_file_as_it_was(migrate):
    triggers = installed_triggers(connection, "imalink_")
    old = migrate([(app, BEFORE.get(app, name)) for app, name in leaf_nodes()])
    Storage, Session = old.get_model("storages", "FileStorage"), old.get_model("imports", "ImportSession")
    OldPhoto, OldFile = old.get_model("imports", "Photo"), old.get_model("imports", "ImageFile")
    storage = Storage.objects.create(
        directory_name="imalink_20261201_093000_0a1b2c3d", base_path="/x", display_name="D"
    )
    session = Session.objects.create(title="Old", file_storage=storage)
    photo = OldPhoto.objects.create(hothash="ab" * 16, width=4, height=3, taken_at=AT, rating=3, tags=["old"])
    for name, primary in (("IMG_1.JPG", True), ("IMG_1.CR2", False)):
        OldFile.objects.create(
            photo=photo,
            import_session=session,
            file_storage=storage,
            relative_path=f"photos/{name}",
            original_filename=name,
            file_format="jpeg",
            file_size=10,
            mtime_ns=1,
            checksum=("cd" if primary else "ef") * 16,
            is_primary=primary,
        )

    migrate(leaf_nodes())

    migrated = Photo.objects.get()
    assert (migrated.hothash, migrated.media_type, migrated.duration_s, migrated.codec) == (
        "ab" * 16,
        "photo",
        None,
        "",
    )
    assert (migrated.rating, migrated.tags, migrated.taken_at, migrated.metadata_edited_at) == (3, ["old"], AT, None)
    assert sorted(ImageFile.objects.values_list("original_filename", "role", "is_primary")) == [
        ("IMG_1.CR2", "original", False),
        ("IMG_1.JPG", "original", True),
    ]
    assert FileStorage.objects.get().xmp_writeback == "off"
    # The columns were added in place: no table was rebuilt, so the running-total and revision triggers stand.
    assert installed_triggers(connection, "imalink_") == triggers


@pytest.mark.django_db
def test_a_format_1_session_index_recovers(allowed_root, corpus):
    base = allowed_root / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Drive")
    card = allowed_root / "card"
    card.mkdir()
    for name in ("raw/pair/canon_eos_6d.JPG", "raw/pair/canon_eos_6d.dng", "jpeg/camera/jolla.jpg"):
        shutil.copy(corpus / name, card)
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    write_storage_indexes(storage)
    hothashes = set(Photo.objects.values_list("hothash", flat=True))

    # The index as main wrote it before issue 16: format 1, no media fields, no roles.
    path = storage.full_path / session_index_file(session.pk)
    index = json.loads(path.read_text())
    index["statistics"]["format_version"] = 1
    for entry in index["files"].values():
        for key in ("media_type", "duration_s", "codec", "role"):
            entry.pop(key)
        entry["photo"].pop("metadata_edited_at")
        for companion in entry["companions"]:
            companion.pop("role")
    path.write_text(json.dumps(index))

    ImageFile.objects.all().delete()
    Photo.objects.all().delete()
    ImportSession.objects.all().delete()
    FileStorage.objects.all().delete()
    report = recover_from_indexes([str(base)])

    assert report.found == 1 and not report.storages[0]["problems"], report
    assert set(Photo.objects.values_list("hothash", flat=True)) == hothashes
    assert set(Photo.objects.values_list("media_type", flat=True)) == {"photo"}
    assert ImageFile.objects.count() == 3 and set(ImageFile.objects.values_list("role", flat=True)) == {"original"}
