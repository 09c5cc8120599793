// The admin's periodic task form (django-celery-beat): under the crontab field, say in words when the chosen
// schedule runs. The package does this in an inline script, which the Content-Security-Policy blocks.
(function () {
  "use strict";
  var data = document.getElementById("readable-crontabs");
  var field = document.querySelector(".field-crontab");
  var select = document.getElementById("id_crontab");
  var translation = document.querySelector(".field-crontab_translation");
  if (translation) translation.style.display = "none";  // the words appear under the field instead
  if (!data || !field || !select) return;
  var readable = JSON.parse(data.textContent);
  var help = field.querySelector(".help");
  if (!help) { help = document.createElement("div"); help.className = "help"; select.parentNode.appendChild(help); }
  var original = help.textContent.trim();
  field.addEventListener("change", function () {
    help.textContent = original;
    if (readable[select.value]) {
      if (original) help.appendChild(document.createElement("br"));
      help.appendChild(document.createTextNode("Translation: " + readable[select.value]));
    }
  });
})();
