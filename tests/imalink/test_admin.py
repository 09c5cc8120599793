"""The Django admin covers every model, and API tokens are made (shown once) and revoked there."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from imalink.models import ApiToken, hash_token
from imports.models import Author, ImageFile, ImportSession, Photo
from jobs.models import Job
from storages.models import FileStorage

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(admin_user):
    c = Client()
    c.force_login(admin_user)
    return c


def test_every_model_is_in_the_admin():
    for model in (ApiToken, FileStorage, Author, ImportSession, Photo, ImageFile, Job):
        assert admin.site.is_registered(model), model


def test_every_changelist_and_change_page_renders(browser, make_storage, api):
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    author = Author.objects.create(name="Ann")
    session = ImportSession.objects.create(title="S", file_storage=storage, default_author=author)
    photo = Photo.objects.create(hothash="a" * 32, title="p")
    image = ImageFile.objects.create(
        photo=photo,
        import_session=session,
        file_storage=storage,
        relative_path="photos/a.jpg",
        original_filename="a.jpg",
        file_format="jpeg",
        file_size=1,
        mtime_ns=1,
        checksum="0" * 32,
    )
    job = Job.objects.create(kind="accessibility_check")
    token = ApiToken.objects.first()
    for obj in (storage, author, session, photo, image, job, token):
        meta = obj._meta
        assert browser.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")).status_code == 200
        assert (
            browser.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])).status_code == 200
        )


def test_a_token_made_in_the_admin_is_shown_once_and_stored_hashed(browser, admin_user):
    response = browser.post(reverse("admin:imalink_apitoken_add"), {"user": admin_user.pk, "name": "backup script"})
    assert (
        response.status_code == 200
    )  # the page itself shows the token: no redirect, no message (tests/imalink/test_tokens.py)
    plain = response.context["plain_text"]
    assert plain in response.content.decode()
    assert not any("ilk_" in str(m) for m in response.context["messages"])
    token = ApiToken.objects.get(name="backup script")
    assert token.digest == hash_token(plain)
    assert ApiToken.authenticate(plain) == admin_user


def test_the_admin_revokes_tokens(browser, admin_user, client):
    token, plain = ApiToken.issue(user=admin_user)
    response = browser.post(
        reverse("admin:imalink_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client.get("/api/v1/file-storage/", headers={"Authorization": f"Bearer {plain}"}).status_code == 401


def test_a_storage_cannot_be_added_as_a_bare_row(browser):
    assert browser.get(reverse("admin:storages_filestorage_add")).status_code == 403
