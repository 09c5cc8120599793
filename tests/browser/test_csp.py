"""Every page works in a real browser under the Content-Security-Policy: headless Chromium visits each page of the
live server (`manage.py serve`), and nothing is refused, no script fails, the bars draw their values, the live job
bar follows the job, and the API's Swagger page lists its operations. A screenshot per page under test-output/.
"""

import io

from django_celery_beat.models import CrontabSchedule
from PIL import Image

from imports.models import Photo
from jobs.models import Job
from tests.browser.test_flows import log_in
from tests.conftest import imported_storage

TRACK = (0xE8, 0xEB, 0xEF)  # the unfilled part of a .bar (static/css/imalink.css)

# Registered before any page script runs (Playwright injects it outside the page's policy), so every refusal is
# recorded even if the console wording changes.
RECORD_VIOLATIONS = (
    """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} refused ${e.blockedURI || "inline"} """
    """(${e.sourceFile || ""}:${e.lineNumber})`);
});
"""
)


class Watch:
    """Console errors, page errors and CSP violations of every page the browser visits."""

    def __init__(self, page):
        self.page, self.problems = page, []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: page error: {error}"))
        page.on("response", self._response)

    def _console(self, message):
        text = message.text
        if text.startswith("Failed to load resource"):
            return  # names no URL; _response records the failed request with its URL
        if message.type == "error" or "Content Security Policy" in text or "Refused to" in text:
            self.problems.append(f"{self.page.url}: console {message.type}: {text}")

    def _response(self, response):
        # The browser asks for /favicon.ico on its own; ImaLink has none, and no page links one.
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"{self.page.url}: {response.status} for {response.url}")

    def visit(self, url, name, ready=None):
        response = self.page.goto(url)
        assert response.status < 400, (url, response.status)
        self.page.wait_for_load_state("networkidle")
        if ready:
            self.page.wait_for_selector(ready, timeout=120_000)
        self.check(name)

    def check(self, name):
        self.page.shot(name)
        self.problems += [f"{self.page.url}: {v}" for v in self.page.evaluate("() => window.__violations || []")]
        assert self.problems == [], self.problems


def filled_fraction(locator) -> float:
    """The share of a bar's middle row of pixels drawn in something other than the track colour."""
    image = Image.open(io.BytesIO(locator.screenshot())).convert("RGB")
    y = image.height // 2
    row = [image.getpixel((x, y)) for x in range(image.width)]
    filled = sum(1 for pixel in row if max(abs(a - b) for a, b in zip(pixel, TRACK)) > 24)
    return filled / image.width


def test_every_page_works_under_the_policy(imalink_server, browser_page, allowed_root, corpus, tmp_path):
    page, url = browser_page, imalink_server.url
    storage, session = imported_storage(allowed_root, corpus)
    photo = Photo.objects.filter(files__import_session=session).first()
    # No worker claims these rows (worker=""), so the sweep leaves them running and the test moves them itself.
    running = Job.objects.create(
        kind="import",
        storage=storage,
        session=session,
        status="running",
        progress={"total": 8, "done": 2, "current": "DCIM/IMG_2.jpg"},
    )
    find = Job.objects.create(
        kind="recovery_find",
        status="running",
        params={"search_roots": [str(allowed_root)]},
        progress={"total": 4, "done": 1},
    )
    CrontabSchedule.objects.create(minute="0", hour="3")  # for the periodic task form's crontab choice
    watch = Watch(page)

    log_in(page, url, (tmp_path / "var" / "admin_password").read_text().strip())
    watch.check("login-and-overview")  # the login page's problems, if any, are still recorded here

    # The overview: the space bar draws the free share it states.
    watch.visit(url + "/", "overview")
    meter = page.locator("meter.bar.space").first
    value = meter.evaluate("m => m.value")
    assert 0 < value < 100, value  # the free share of the real filesystem under the drive
    assert abs(filled_fraction(meter) - value / 100) < 0.03, (filled_fraction(meter), value)
    job_bar = page.locator(f"[data-job-id='{running.pk}'] progress.bar")
    assert job_bar.evaluate("p => p.value") == 25 and abs(filled_fraction(job_bar) - 0.25) < 0.03

    watch.visit(f"{url}/storages/{storage.storage_uuid}/", "storage-detail")
    watch.visit(url + "/storages/new/", "storage-new")
    watch.visit(url + "/imports/new/", "import-new")
    watch.visit(f"{url}/sessions/{session.pk}/", "session")
    watch.visit(f"{url}/photos/{photo.hothash}/", "photo")
    assert page.locator("img.preview").evaluate("i => i.complete && i.naturalWidth > 0")
    watch.visit(url + "/jobs/", "jobs")

    # The job page's bar is live: jobs.js follows the job through the API and redraws the bar.
    watch.visit(f"{url}/jobs/{running.pk}/", "job-25")
    bar = page.locator("progress[data-bar]")
    page.wait_for_function("() => document.querySelector('progress[data-bar]').value === 25")
    Job.objects.filter(pk=running.pk).update(progress={"total": 8, "done": 6, "current": "DCIM/IMG_6.jpg"})
    page.wait_for_function("() => document.querySelector('progress[data-bar]').value === 75")
    assert page.locator("[data-field=percent]").inner_text() == "75%"
    assert abs(filled_fraction(bar) - 0.75) < 0.03, filled_fraction(bar)
    watch.check("job-75")

    watch.visit(url + "/recovery/", "recovery")
    watch.visit(f"{url}/recovery/?find={find.pk}", "recovery-finding")
    page.wait_for_function("() => document.querySelector('progress[data-bar]').value === 25")
    watch.visit(url + "/health/", "health")

    watch.visit(url + "/admin/", "admin")
    watch.visit(url + "/admin/imalink/apitoken/add/", "admin-token-add")
    watch.visit(f"{url}/admin/storages/filestorage/{storage.pk}/change/", "admin-storage-change")
    watch.visit(url + "/admin/django_celery_beat/periodictask/add/", "admin-periodic-task-add")
    page.locator("#id_crontab").select_option(index=1)  # our static/js/periodic_task.js, not an inline script
    assert "Translation:" in page.locator(".field-crontab .help").inner_text()
    watch.check("admin-periodic-task-crontab")

    # Swagger UI renders from ninja's static files and its JSON settings block, and lists the operations.
    watch.visit(url + "/api/v1/docs", "api-docs", ready=".opblock-summary-path")
    assert page.locator(".opblock").count() > 10
    page.locator(".opblock-summary").first.click()  # open one: its parameters and responses render too
    page.wait_for_selector(".opblock-body")
    page.wait_for_load_state("networkidle")
    watch.check("api-docs-open")


def test_the_browser_enforces_the_policy(imalink_server, browser_page, tmp_path):
    """The detector above is not blind: an inline script and an inline style are refused, and recorded."""
    page, url = browser_page, imalink_server.url
    watch = Watch(page)
    log_in(page, url, (tmp_path / "var" / "admin_password").read_text().strip())
    page.evaluate("""() => {
        const s = document.createElement("script"); s.textContent = "window.__ran = true"; document.body.appendChild(s);
        document.body.setAttribute("style", "background: red");
    }""")
    page.wait_for_function("() => window.__violations.length >= 2")
    assert page.evaluate("() => window.__ran") is None
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
    directives = " ".join(page.evaluate("() => window.__violations"))
    assert "script-src" in directives and "style-src" in directives, directives
    assert any("Refused to" in p or "Content Security Policy" in p for p in watch.problems), watch.problems
