// System Status: "select all", and live progress of a background run, by polling
// /jobs/current (a GET that changes nothing). When the run ends, the page reloads
// to show the new versions and the result (a dialog the administrator dismisses).
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      var boxes = document.querySelectorAll("input[name=component]:not([disabled])");
      for (var i = 0; i < boxes.length; i++) { boxes[i].checked = all.checked; }
    });
  }
  // A finished run's result: rendered as an open <dialog> (readable without JavaScript);
  // shown again as a modal one, so focus moves to its OK button and Escape closes it.
  var result = document.getElementById("job-result");
  if (result && typeof result.showModal === "function" && result.hasAttribute("open")) {
    result.close();
    result.showModal();
  }
  var script = document.getElementById("status-script");
  if (!script || script.getAttribute("data-running") !== "yes") { return; }
  var url = script.getAttribute("data-poll");
  var banner = document.getElementById("job-running");
  function show(job) {
    if (banner) { banner.hidden = !job.running; if (job.text) { banner.textContent = job.text; } }
    var ids = Object.keys(job.components || {});
    for (var i = 0; i < ids.length; i++) {
      var cell = document.getElementById("progress-" + ids[i]);
      if (cell) {
        cell.textContent = job.components[ids[i]].text;
        cell.setAttribute("data-phase", job.components[ids[i]].phase);
      }
    }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (job) {
        show(job);
        if (job.running) { window.setTimeout(poll, 500); } else { window.location.reload(); }
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  poll();
})();
