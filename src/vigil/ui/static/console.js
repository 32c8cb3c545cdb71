// vigil console: refreshes the overview's live counters (models and endpoints) every 5 s. Progressive: without
// JavaScript the page shows the same figures as of its last load.
"use strict";
(function () {
  var table = document.querySelector("table.overview");
  if (!table || !window.fetch) { return; }
  var prefix = document.querySelector("link[rel=stylesheet]").getAttribute("href").replace(/\/static\/console\.css$/, "");
  function show(value, kind) {
    if (value === null || value === undefined) { return "—"; }
    if (kind === "error_rate") { return (100 * value).toFixed(1) + " %"; }
    return Number(value.toPrecision(3)).toString();
  }
  function refresh() {
    fetch(prefix + "/live.json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        [["model", data.models], ["endpoint", data.endpoints || {}]].forEach(function (pair) {
          table.querySelectorAll("tr[data-" + pair[0] + "]").forEach(function (row) {
            var figures = pair[1][row.getAttribute("data-" + pair[0])];
            if (!figures || !figures.requests_per_s) { return; }
            row.querySelectorAll("[data-live]").forEach(function (cell) {
              var kind = cell.getAttribute("data-live");
              if (kind in figures) { cell.textContent = show(figures[kind], kind); }
            });
          });
        });
      })
      .catch(function () { /* the next round tries again */ });
  }
  window.setInterval(refresh, 5000);
}());
