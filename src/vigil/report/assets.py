"""The report's stylesheet and script, inlined into the page so it opens offline (the
model card uses the same stylesheet).

The script reads the numbers from the page's ``vigil-data`` JSON block and sorts the
feature table from them (click a header; ``#sort=KEY:asc|desc`` in the address does the
same on load). It marks the ``<body>`` with ``data-ready="1"`` when it has run, or with
``data-error`` holding the message when anything failed, so a browser test can tell.
"""

from __future__ import annotations

CSS = """
:root { --ink: #1f2933; --muted: #62707d; --line: #e3e8ee; --bad: #c0392b; --good: #1e8449;
        --bad-bg: #fdecea; --good-bg: #e9f7ef; --ref: #4c78a8; --cur: #f58518; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #f7f9fb; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 12px; }
.subtitle { color: var(--muted); margin: 0 0 18px; }
.verdict { border-radius: 8px; padding: 16px 20px; border: 1px solid var(--line); }
.verdict.drifted { background: var(--bad-bg); border-color: #f5b7b1; }
.verdict.stable { background: var(--good-bg); border-color: #a9dfbf; }
.verdict .headline { font-size: 19px; font-weight: 650; margin: 0 0 4px; }
.verdict.drifted .headline { color: var(--bad); }
.verdict.stable .headline { color: var(--good); }
.verdict p { margin: 4px 0; }
.rule { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line);
        border-radius: 8px; overflow: hidden; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef2f6; font-weight: 600; cursor: pointer; user-select: none;
     white-space: nowrap; }
th:hover { background: #e2e8ef; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
tr.drifted td:first-child { border-left: 3px solid var(--bad); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         font-weight: 600; }
.badge.yes { background: var(--bad-bg); color: var(--bad); }
.badge.no { background: var(--good-bg); color: var(--good); }
.method { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr));
          gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
         padding: 10px; }
figure.drifted { border-color: #f5b7b1; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
svg.chart { width: 100%; height: auto; display: block; }
svg .grid { stroke: #edf0f3; }
svg .axis { stroke: #8a96a3; }
svg .tick { font-size: 11px; fill: var(--muted); }
svg .axis-title { font-size: 12px; fill: var(--muted); }
svg .chart-title { font-size: 14px; font-weight: 600; fill: var(--ink); }
svg .legend text { font-size: 12px; fill: var(--ink); }
footer { color: var(--muted); font-size: 12px; margin-top: 32px; }
"""

JS = """
(function () {
  "use strict";
  var body = document.body;
  window.addEventListener("error", function (e) { body.dataset.error = String(e.message); });
  try {
    var data = JSON.parse(document.getElementById("vigil-data").textContent);
    var table = document.getElementById("features");
    var tbody = table.tBodies[0];
    var headers = Array.prototype.slice.call(table.querySelectorAll("th[data-key]"));
    var rows = {};
    Array.prototype.forEach.call(tbody.rows, function (tr) { rows[tr.dataset.column] = tr; });
    var records = data.report.columns;

    function cmp(key, dir) {
      var sign = dir === "asc" ? 1 : -1;
      return function (a, b) {
        var x = a[key], y = b[key];
        var xNull = x === null || x === undefined, yNull = y === null || y === undefined;
        if (xNull || yNull) {  // missing numbers sort last whichever the direction
          if (xNull && yNull) { return a.column < b.column ? -1 : 1; }
          return xNull ? 1 : -1;
        }
        if (x === y) { return a.column < b.column ? -1 : a.column > b.column ? 1 : 0; }
        if (typeof x === "string") { return sign * x.localeCompare(y); }
        return sign * (x < y ? -1 : 1);
      };
    }

    function sortBy(key, dir) {
      records.slice().sort(cmp(key, dir)).forEach(function (rec) {
        tbody.appendChild(rows[rec.column]);
      });
      headers.forEach(function (th) {
        th.setAttribute("aria-sort", th.dataset.key !== key ? "none"
                        : dir === "asc" ? "ascending" : "descending");
      });
      body.dataset.sortKey = key;
      body.dataset.sortDir = dir;
    }

    headers.forEach(function (th) {
      th.addEventListener("click", function () {
        var key = th.dataset.key;
        var first = th.dataset.type === "text" ? "asc" : "desc";
        var dir = body.dataset.sortKey === key
          ? (body.dataset.sortDir === "asc" ? "desc" : "asc") : first;
        sortBy(key, dir);
        history.replaceState(null, "", "#sort=" + key + ":" + dir);
      });
    });

    var wanted = /^#sort=([a-z_]+):(asc|desc)$/.exec(location.hash);
    if (wanted && headers.some(function (th) { return th.dataset.key === wanted[1]; })) {
      sortBy(wanted[1], wanted[2]);
    }
    body.dataset.charts = String(document.querySelectorAll("svg.chart").length);
    body.dataset.ready = "1";
  } catch (err) {
    body.dataset.error = String(err && err.message ? err.message : err);
  }
})();
"""
