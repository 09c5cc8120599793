// Live job progress: any element with data-job-id is refreshed from /api/v1/jobs/<id> until the job ends.
(function () {
  "use strict";
  function fmt(n) { return n === null || n === undefined ? "–" : String(n); }
  function update(el, job) {
    var p = job.progress || {};
    var total = p.total || 0, done = p.done || 0;
    var pct = total ? Math.round((100 * done) / total) : (job.status === "succeeded" ? 100 : 0);
    var bar = el.querySelector("[data-bar]");
    if (bar) bar.value = pct;  // a <progress>: its value sets the bar and what a screen reader hears
    var set = function (name, value) { var t = el.querySelector("[data-field=" + name + "]"); if (t) t.textContent = fmt(value); };
    set("status", job.status); set("percent", pct + "%"); set("done", done); set("total", total || "–");
    set("files_done", p.files_done); set("files_total", p.files_total); set("phase", p.phase);
    set("imported", p.imported); set("duplicates", p.duplicates); set("failed", p.failed);
    set("current", p.current || ""); set("eta", job.eta_seconds === null ? "–" : Math.round(job.eta_seconds) + " s");
    var list = el.querySelector("[data-failures]");
    var failures = (job.result && job.result.failures) || p.recent_failures || [];
    if (list) {
      list.textContent = "";
      failures.forEach(function (f) { var li = document.createElement("li"); li.textContent = f.path + ": " + f.reason; list.appendChild(li); });
    }
    el.setAttribute("data-status", job.status);
    var finished = ["succeeded", "failed", "cancelled"].indexOf(job.status) >= 0;
    var cancel = el.querySelector("[data-cancel]");
    if (cancel && finished) cancel.hidden = true;
    if (finished && el.hasAttribute("data-reload-when-done")) { window.location.reload(); }
    return finished;
  }
  function poll(el) {
    var id = el.getAttribute("data-job-id");
    fetch("/api/v1/jobs/" + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (body) { if (!body.success) return; if (!update(el, body.data)) setTimeout(function () { poll(el); }, 700); })
      .catch(function () { setTimeout(function () { poll(el); }, 2000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-job-id]").forEach(function (el) {
      if (["succeeded", "failed", "cancelled"].indexOf(el.getAttribute("data-status")) < 0) poll(el);
    });
  });
})();
