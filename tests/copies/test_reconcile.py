"""Moves across storages (issue 17 point 7): a file moved by hand from one storage's photos/ into another's is
recorded as one move (the row changes storage and session, the photo and its metadata stay, the old entry leaves
the first storage's indexes), by a scan with adopt_new and by POST /storage-index/reconcile. Never while the
storage it left is unavailable. Real storages on tmp_path.
"""

import json
import os
import shutil

import pytest

from copies.reconcile import reconcile_storages
from imports import counting
from imports.models import ImageFile, ImportSession, Photo
from imports.pipeline import ADOPTED_SESSION_TITLE
from indexing.scanner import scan_storage
from storages.layout import hotpreview_relative_path, session_index_file
from tests.copies.test_copies import import_card, make_card, new_storage, plug_back, unplug


def indexed_paths(storage, session) -> set[str]:
    index = json.loads((storage.full_path / session_index_file(session.pk)).read_text())
    paths = set()
    for entry in index["files"].values():
        paths.add(entry["path"])
        paths.update(c["path"] for c in entry.get("companions", []))
    return paths


def session_ratings(storage, session) -> dict[str, int]:
    index = json.loads((storage.full_path / session_index_file(session.pk)).read_text())
    return {entry["path"]: entry["photo"]["rating"] for entry in index["files"].values()}


def move_by_hand(source, row, target, folder="moved") -> str:
    new = f"photos/{folder}/{row.relative_path.rsplit('/', 1)[1]}"
    (target.full_path / new).parent.mkdir(parents=True, exist_ok=True)
    os.rename(source.full_path / row.relative_path, target.full_path / new)
    return new


def a_rated_file(storage) -> ImageFile:
    row = ImageFile.objects.filter(file_storage=storage, is_primary=True).select_related("photo").order_by("id").first()
    Photo.objects.filter(pk=row.photo_id).update(rating=4, title="Keeper")
    return row


def assert_one_move(row, *, source, target, new_path, old_session):
    moved = ImageFile.objects.select_related("import_session", "photo").get(pk=row.pk)  # the same row
    assert moved.file_storage_id == target.pk and moved.relative_path == new_path
    assert moved.status == ImageFile.Status.PRESENT
    assert moved.import_session.file_storage_id == target.pk
    assert moved.import_session.title == ADOPTED_SESSION_TITLE
    assert (moved.photo.rating, moved.photo.title) == (4, "Keeper")
    assert ImageFile.objects.filter(photo=moved.photo).count() == 1  # no second row for the same bytes
    assert row.relative_path not in indexed_paths(source, old_session)
    assert session_ratings(target, moved.import_session)[new_path] == 4
    assert (target.full_path / hotpreview_relative_path(moved.photo.hothash)).is_file()
    copies = counting.photo_copies(moved.photo)
    assert [h["storage_uuid"] for h in copies["storages"]] == [target.storage_uuid]
    assert counting.photos_only_here(target) == 1


@pytest.mark.django_db(transaction=True)
def test_a_file_moved_by_hand_is_reconciled_by_a_scan_with_adopt_new(allowed_root, corpus):
    main, other = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Other")
    session = import_card(main, make_card(allowed_root, corpus))
    row = a_rated_file(main)
    files_before = ImageFile.objects.count()
    new_path = move_by_hand(main, row, other)

    report = scan_storage(other, adopt_new=True)  # Main was not scanned: its row still says present

    assert [(m["file_id"], m["new_path"], m["old_path"]) for m in report.moved_in] == [
        (row.pk, new_path, row.relative_path)
    ]
    assert report.moved_in[0]["from_storage_uuid"] == str(main.storage_uuid)
    moved_from = str(main.storage_uuid)
    assert report.new_files == [
        {"path": new_path, "file_size": row.file_size, "adopted": True, "moved_from_storage_uuid": moved_from}
    ]
    assert report.adopted is None  # nothing else was new
    assert ImageFile.objects.count() == files_before
    assert_one_move(row, source=main, target=other, new_path=new_path, old_session=session)
    assert scan_storage(main).missing_files == []  # it left Main's records whole


def test_a_file_moved_by_hand_is_reconciled_by_the_route(celery_worker, api, allowed_root, corpus):
    main, other = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Other")
    session = import_card(main, make_card(allowed_root, corpus))
    row = a_rated_file(main)
    new_path = move_by_hand(main, row, other, folder="from-main")
    assert len(scan_storage(main).missing_files) == 1  # Main scanned first: its row is missing
    assert len(scan_storage(other).new_files) == 1  # and a scan without adopt_new only reports the new file

    response = api.post("/api/v1/storage-index/reconcile")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == "succeeded"
    assert [(m["file_id"], m["new_path"]) for m in data["moves"]] == [(row.pk, new_path)]
    assert set(data["storages_checked"]) == {str(main.storage_uuid), str(other.storage_uuid)}
    assert_one_move(row, source=main, target=other, new_path=new_path, old_session=session)
    assert api.post("/api/v1/storage-index/reconcile").json()["data"]["moves"] == []  # nothing left to pair


@pytest.mark.django_db(transaction=True)
def test_nothing_is_reconciled_while_the_storage_it_left_is_unavailable(allowed_root, corpus):
    main, other = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Other")
    session = import_card(main, make_card(allowed_root, corpus))
    row = a_rated_file(main)
    new_path = move_by_hand(main, row, other)
    scan_storage(main)
    away = unplug(main)
    files_before = ImageFile.objects.count()

    scanned = scan_storage(other, adopt_new=True)
    assert scanned.moved_in == [] and [h["path"] for h in scanned.held_back] == [new_path]
    assert scanned.adopted is None  # held back, not adopted as a new file: the move is recorded later
    reconciled = reconcile_storages()
    assert reconciled.moves == []
    assert [u["storage_uuid"] for u in reconciled.unavailable_storages] == [str(main.storage_uuid)]
    row.refresh_from_db()
    assert (row.file_storage_id, row.status) == (main.pk, ImageFile.Status.MISSING)
    assert ImageFile.objects.count() == files_before

    plug_back(main, away)
    assert [m["file_id"] for m in reconcile_storages().moves] == [row.pk]
    assert_one_move(row, source=main, target=other, new_path=new_path, old_session=session)


@pytest.mark.django_db(transaction=True)
def test_a_file_copied_by_hand_is_a_second_copy_not_a_move(allowed_root, corpus):
    main, other = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Other")
    import_card(main, make_card(allowed_root, corpus))
    row = ImageFile.objects.filter(file_storage=main).select_related("photo").order_by("id").first()
    (other.full_path / "photos/copied").mkdir(parents=True)
    shutil.copy(main.full_path / row.relative_path, other.full_path / "photos/copied/x.jpg")

    report = scan_storage(other, adopt_new=True)

    assert report.moved_in == [] and report.adopted["imported"] == 1
    row.refresh_from_db()
    assert row.file_storage_id == main.pk
    assert counting.photo_copies(row.photo)["count"] == 2
    assert ImportSession.objects.filter(file_storage=other, title=ADOPTED_SESSION_TITLE).exists()
