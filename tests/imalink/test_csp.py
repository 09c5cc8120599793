"""The Content-Security-Policy: every page, admin page and the API's docs answer with it, and no template renders
what it would block (an inline style or script, an on*= handler, a javascript: URL, a file from elsewhere).

The browser proves the pages still work under it (tests/browser/test_csp.py); this file proves, quickly and for
every route, that the header is there and the markup is clean.
"""

from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import resolve, reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from imports.models import Photo
from jobs.models import Job
from tests.conftest import imported_storage
from tests.reliability.test_access import page_urls

pytestmark = pytest.mark.django_db

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Swagger UI's own stylesheet draws its icons as data: images; only its page allows them (imalink/api.py).
DOCS_POLICY = {**POLICY, "img-src": ["'self'", "data:"]}
# <script> elements that hold data, not code: the browser never runs them, so CSP has nothing to block.
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}


def policy_of(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"{response.request['PATH_INFO']} answered {response.status_code} without a Content-Security-Policy"
    assert "unsafe-inline" not in header and "unsafe-eval" not in header, header
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


class InlineFinder(HTMLParser):
    """Collects what a strict CSP blocks: style attributes and <style>, inline scripts, handlers, javascript: URLs,
    and scripts, stylesheets or images from another origin."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems, self._script = [], None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"<{tag} style={value!r}>")
            elif name.startswith("on"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._script = attributes
            if attributes.get("src") is not None:
                self._same_origin(tag, attributes["src"])
        if tag == "link" and "stylesheet" in (attributes.get("rel") or "").split():
            self._same_origin(tag, attributes.get("href") or "")
        if tag == "img":
            self._same_origin(tag, attributes.get("src") or "")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        script = self._script
        if (
            script is not None
            and script.get("src") is None
            and data.strip()
            and script.get("type") not in DATA_SCRIPT_TYPES
        ):
            self.problems.append(f"inline <script>: {data.strip()[:80]!r}")

    def _same_origin(self, tag, url):
        if not url.startswith("/") or url.startswith("//"):
            self.problems.append(f"<{tag}> from elsewhere: {url!r}")


def inline_problems(response) -> list[str]:
    finder = InlineFinder()
    finder.feed(response.content.decode())
    finder.close()
    return finder.problems


def assert_clean(response, policy=POLICY):
    path = response.request["PATH_INFO"]
    assert policy_of(response) == policy, path
    if response.get("Content-Type", "").startswith("text/html"):
        assert inline_problems(response) == [], path


@pytest.fixture
def staff(admin_user):
    browser = Client()
    browser.force_login(admin_user)
    return browser


@pytest.fixture
def archive(allowed_root, corpus):
    """A storage with a real import (so photos, previews and used space), a running and a finished job, and a
    search for storages in progress: every bar and table the pages draw has something to show."""
    storage, session = imported_storage(allowed_root, corpus)
    running = Job.objects.create(
        kind="import",
        storage=storage,
        session=session,
        status="running",
        progress={"total": 8, "done": 2, "current": "DCIM/IMG_2.jpg"},
    )
    Job.objects.create(
        kind="validate",
        storage=storage,
        status="succeeded",
        progress={"total": 3, "done": 3},
        result={"validated_files": 3, "missing_files": [], "corrupted_files": [], "extra_files": [], "mode": "quick"},
    )
    find = Job.objects.create(
        kind="recovery_find",
        status="running",
        params={"search_roots": [str(allowed_root)]},
        progress={"total": 4, "done": 1},
    )
    photo = Photo.objects.filter(files__import_session=session).first()
    return {
        "storage_uuid": storage.storage_uuid,
        "session_id": session.pk,
        "hothash": photo.hothash,
        "job_id": running.pk,
        "action": "scan",
        "find": find,
        "storage": storage,
    }


def real_page_urls(archive) -> list[str]:
    """Every page of tests/reliability/test_access.py, pointed at real rows instead of made-up ids."""
    urls = []
    for url in page_urls():
        match = resolve(url)
        urls.append(reverse(match.view_name, kwargs={name: archive[name] for name in match.kwargs}))
    return urls


def admin_urls(storage, user) -> list[str]:
    """The admin's index, and every registered model's list, add page (where adding is allowed) and the change
    page of a row."""
    request = RequestFactory().get("/admin/")
    request.user = user
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:%s_%s_changelist" % info))
        if model_admin.has_add_permission(request):
            urls.append(reverse("admin:%s_%s_add" % info))
        row = model.objects.first()
        if row is not None:
            urls.append(reverse("admin:%s_%s_change" % info, args=[row.pk]))
    assert reverse("admin:storages_filestorage_change", args=[storage.pk]) in urls
    assert reverse("admin:imalink_apitoken_add") in urls
    return urls


def test_every_page_answers_with_the_policy_and_renders_nothing_inline(staff, archive):
    urls = real_page_urls(archive) + [f"/recovery/?find={archive['find'].pk}"]
    rendered = 0
    for url in urls:
        response = staff.get(url)
        assert response.status_code < 500, (url, response.status_code)
        assert_clean(response)
        rendered += response.get("Content-Type", "").startswith("text/html") and response.status_code == 200
    assert rendered >= 8, urls
    # The bars: <progress>/<meter> whose value draws them, not a width in a style attribute.
    overview = staff.get("/").content.decode()
    assert '<meter class="bar space' in overview and '<progress class="bar" data-bar max="100" value="25"' in overview


def test_pages_with_made_up_ids_and_forms_with_errors_carry_it_too(staff, archive):
    for url in page_urls():  # mostly 404s for rows that do not exist
        assert_clean(staff.get(url))
    for url in ("/storages/new/", "/imports/new/", "/recovery/", f"/photos/{archive['hothash']}/"):
        response = staff.post(url, {"rating": "99", "search_roots": "/etc", "base_path": "relative"})
        assert response.status_code < 500, (url, response.status_code)
        assert_clean(response)


def test_the_login_page_carries_it(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert_clean(response)
    assert_clean(client.post(reverse("login"), {"username": "nobody", "password": "wrong"}))


def test_every_admin_page_carries_it(staff, archive, admin_user, api_token):
    schedule = CrontabSchedule.objects.create(minute="0", hour="3")
    PeriodicTask.objects.get_or_create(name="csp check", defaults={"task": "imalink.nothing", "crontab": schedule})
    for url in admin_urls(archive["storage"], admin_user):
        response = staff.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert_clean(response)
    # A new API token's one showing (its own page, or before that change a redirect with a message).
    response = staff.post(reverse("admin:imalink_apitoken_add"), {"user": admin_user.pk, "name": "csp"})
    assert response.status_code in (200, 302), response.status_code
    assert_clean(response)


def test_the_api_docs_allow_data_images_and_nothing_else(staff):
    response = staff.get("/api/v1/docs")
    assert response.status_code == 200
    assert_clean(response, DOCS_POLICY)
    assert 'id="swagger-settings"' in response.content.decode()  # its settings ride in a JSON block, not code
