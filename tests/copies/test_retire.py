"""Retire a drive safely (issue 17 point 4): GET /api/v1/file-storage/{uuid}/retire-check answers safe_to_retire,
with the photos whose only copy, or only verified copy, is on the storage. Real storages on tmp_path.
"""

import pytest

from imports.models import ImageFile, Photo
from tests.conftest import assert_error
from tests.copies.test_copies import import_card, make_card, new_storage, unplug


def retire_check(api, storage, query="") -> dict:
    response = api.get(f"/api/v1/file-storage/{storage.storage_uuid}/retire-check{query}")
    assert response.status_code == 200, response.content
    return response.json()["data"]


@pytest.mark.django_db(transaction=True)
def test_a_storage_whose_photos_are_all_elsewhere_too_is_safe_to_retire(api, allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Backup")
    card = make_card(allowed_root, corpus)
    import_card(main, card)
    import_card(backup, card)

    for storage in (main, backup):
        answer = retire_check(api, storage)
        assert answer["safe_to_retire"] is True, answer
        assert answer["only_copy"] == [] and answer["only_copy_count"] == 0
        assert answer["only_verified_copy"] == [] and answer["only_verified_copy_count"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_storage_with_the_only_copy_of_a_photo_is_not_safe(api, allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Backup")
    import_card(main, make_card(allowed_root, corpus))
    hothashes = set(Photo.objects.values_list("hothash", flat=True))

    answer = retire_check(api, main)
    assert answer["safe_to_retire"] is False
    assert answer["only_copy_count"] == 2
    assert {p["hothash"] for p in answer["only_copy"]} == hothashes
    for photo in answer["only_copy"]:
        assert photo["copies"] == 1 and photo["path"].startswith("photos/")
        assert (main.full_path / photo["path"]).is_file()
    assert retire_check(api, backup)["safe_to_retire"] is True  # it holds nothing

    capped = retire_check(api, main, "?limit=1")
    assert capped["only_copy_count"] == 2 and len(capped["only_copy"]) == 1 and capped["limit"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_only_verified_copy_keeps_a_storage_from_being_safe(api, allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Backup")
    card = make_card(allowed_root, corpus)
    import_card(main, card)
    import_card(backup, card)
    ImageFile.objects.filter(file_storage=backup).update(verified_at=None)  # copied by hand, say: never read back

    answer = retire_check(api, main)
    assert answer["safe_to_retire"] is False
    assert answer["only_copy_count"] == 0
    assert answer["only_verified_copy_count"] == 2
    assert {p["copies"] for p in answer["only_verified_copy"]} == {2}
    assert retire_check(api, backup)["safe_to_retire"] is True  # Main keeps a verified copy of each

    ImageFile.objects.filter(file_storage=backup).update(verified_at=ImageFile.objects.first().verified_at)
    assert retire_check(api, main)["safe_to_retire"] is True


@pytest.mark.django_db(transaction=True)
def test_the_check_answers_for_an_unplugged_storage_from_the_database(api, allowed_root, corpus):
    main = new_storage(allowed_root, "Main")
    import_card(main, make_card(allowed_root, corpus))
    unplug(main)
    answer = retire_check(api, main)
    assert answer["safe_to_retire"] is False and answer["only_copy_count"] == 2


@pytest.mark.django_db(transaction=True)
def test_an_unknown_storage_is_404(api):
    assert_error(api.get("/api/v1/file-storage/00000000-0000-4000-8000-000000000000/retire-check"), 404)
