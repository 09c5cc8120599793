"""API tokens: a new one is shown once in the page that makes it (never in a cookie), and revocation is final."""

import pytest
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from imalink.models import ApiToken, hash_token
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

API_ROUTE = "/api/v1/file-storage/"
ADD = reverse("admin:imalink_apitoken_add")
CHANGELIST = reverse("admin:imalink_apitoken_changelist")


@pytest.fixture
def staff(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    return client


def post(client: Client, path: str, data: dict):
    """POST an admin form as a browser does: GET it first for the CSRF cookie."""
    client.get(path)
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def bearer(client: Client, plain: str):
    return client.get(API_ROUTE, headers={"Authorization": f"Bearer {plain}"})


def cookie_texts(response) -> list[str]:
    """Every Set-Cookie value, and the messages cookie decoded as Django reads it."""
    texts = [morsel.OutputString() for morsel in response.cookies.values()]
    if "messages" in response.cookies:
        request = HttpRequest()
        request.COOKIES["messages"] = response.cookies["messages"].value
        texts += [str(message) for message in CookieStorage(request)._decode(request.COOKIES["messages"]) or []]
    return texts


def make_in_admin(staff, admin_user, name="backup script"):
    response = post(staff, ADD, {"user": admin_user.pk, "name": name})
    token = ApiToken.objects.get(name=name)
    return response, token


def shown_token(response) -> str:
    page = response.content.decode()
    start = page.index('value="ilk_') + len('value="')
    return page[start : page.index('"', start)]


def test_the_add_page_shows_the_token_once_in_its_body(staff, admin_user, client):
    response, token = make_in_admin(staff, admin_user)
    assert response.status_code == 200 and "Location" not in response
    plain = shown_token(response)
    assert token.digest == hash_token(plain) and plain not in token.digest
    page = response.content.decode()
    assert "Copy it now" in page and f'href="{CHANGELIST}"' in page
    assert "no-store" in response["Cache-Control"]
    for text in cookie_texts(response):
        assert plain not in text
    assert bearer(client, plain).status_code == 200

    # Nothing that follows shows it again: not the list, not the token's page, not a message left behind.
    for path in (CHANGELIST, reverse("admin:imalink_apitoken_change", args=[token.pk])):
        later = staff.get(path)
        assert later.status_code == 200 and plain not in later.content.decode()
        assert all(plain not in text for text in cookie_texts(later))


def test_the_add_form_offers_only_the_one_save_button(staff):
    page = staff.get(ADD).content.decode()
    assert 'name="_save"' in page and 'name="_continue"' not in page and 'name="_addanother"' not in page


def test_revoked_at_is_read_only_in_the_admin(staff, admin_user):
    token, _ = ApiToken.issue(user=admin_user, name="cron")
    page = staff.get(reverse("admin:imalink_apitoken_change", args=[token.pk])).content.decode()
    assert 'name="revoked_at' not in page and 'name="revoke"' in page


def assert_revoked_for_good(client, token: ApiToken, plain: str, staff):
    """Revoked, and clearing revoked_at by the admin's form or straight in the database does not bring it back."""
    token.refresh_from_db()
    assert token.revoked_at is not None and token.digest != hash_token(plain)
    assert_error(bearer(client, plain), 401, "unauthorized")

    change = reverse("admin:imalink_apitoken_change", args=[token.pk])
    response = post(
        staff,
        change,
        {"user": token.user_id, "name": token.name, "revoked_at_0": "", "revoked_at_1": "", "revoked_at": ""},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert_error(bearer(client, plain), 401, "unauthorized")

    ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)
    assert_error(bearer(client, plain), 401, "unauthorized")
    assert ApiToken.authenticate(plain) is None


def test_revoking_through_the_model_is_final(client, admin_user, staff):
    token, plain = ApiToken.issue(user=admin_user)
    assert bearer(client, plain).status_code == 200
    token.revoke()
    assert_revoked_for_good(client, token, plain, staff)


def test_revoking_through_the_admin_action_is_final(client, admin_user, staff):
    token, plain = ApiToken.issue(user=admin_user)
    other, other_plain = ApiToken.issue(user=admin_user)
    assert bearer(client, plain).status_code == 200
    response = post(staff, CHANGELIST, {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    assert_revoked_for_good(client, token, plain, staff)
    assert bearer(client, other_plain).status_code == 200  # only the selected token


def test_revoking_through_the_change_form_is_final(client, admin_user, staff):
    token, plain = ApiToken.issue(user=admin_user, name="laptop")
    assert bearer(client, plain).status_code == 200
    change = reverse("admin:imalink_apitoken_change", args=[token.pk])
    response = post(staff, change, {"user": admin_user.pk, "name": "laptop", "revoke": "on"})
    assert response.status_code == 302
    assert 'name="revoke"' not in staff.get(change).content.decode()  # nothing left to revoke
    assert_revoked_for_good(client, token, plain, staff)


def test_a_token_made_in_the_admin_and_revoked_there_is_final(client, admin_user, staff):
    response, token = make_in_admin(staff, admin_user, name="made and revoked")
    plain = shown_token(response)
    assert bearer(client, plain).status_code == 200
    post(staff, CHANGELIST, {"action": "revoke", "_selected_action": [token.pk]})
    assert_revoked_for_good(client, token, plain, staff)


def test_save_refuses_to_clear_a_stored_revocation(admin_user):
    token, _ = ApiToken.issue(user=admin_user)
    token.revoke()
    token.revoked_at = None
    with pytest.raises(ValueError, match="stays revoked"):
        token.save()
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_revoked_digests_are_unique_and_never_a_sha256(admin_user):
    tokens = [ApiToken.issue(user=admin_user)[0] for _ in range(3)]
    for token in tokens:
        token.revoke()
    digests = set(ApiToken.objects.values_list("digest", flat=True))
    assert len(digests) == 3
    assert all(d.startswith("revoked:") and len(d) <= 64 for d in digests)


def test_a_token_keeps_its_owner(staff, admin_user, django_user_model):
    other = django_user_model.objects.create_user("other", password="x", is_staff=True)
    _, token = make_in_admin(staff, admin_user)
    change = reverse("admin:imalink_apitoken_change", args=[token.pk])
    assert 'name="user"' not in staff.get(change).content.decode()
    post(staff, change, {"user": other.pk, "name": "renamed"})
    token.refresh_from_db()
    assert token.user == admin_user and token.name == "renamed"
