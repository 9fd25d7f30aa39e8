/* Charts for the console, drawn with the vendored uPlot (static/vendor/uplot) from data the
   page carries in a <script type="application/json" id="..."> block:
     <div class="chart" data-chart="chart-sent" aria-hidden="true"></div>
     <script type="application/json" id="chart-sent">{"kind": "line", "x": [...], ...}</script>
   A chart only repeats a table that is on the page with the same numbers (screen readers and
   pages without JavaScript read the table), so the drawing is aria-hidden.
   Data: {"kind": "line" | "bars", "x_kind": "time" | "category", "x": [unix seconds | labels],
          "series": [{"label": "...", "values": [...]}, ...]} */
(function () {
  "use strict";
  var PALETTE = ["#0b5cad", "#17643a", "#b35c00", "#a1161f", "#6b3fa0", "#4a5360"];

  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source || typeof window.uPlot === "undefined") { return; }
    var spec;
    try { spec = JSON.parse(source.textContent || "{}"); } catch (e) { return; }
    var categories = spec.x_kind === "category";
    var xs = categories ? spec.x.map(function (_, i) { return i; }) : spec.x;
    var data = [xs];
    var series = [{}];
    var bars = spec.kind === "bars" && window.uPlot.paths && window.uPlot.paths.bars;
    (spec.series || []).forEach(function (s, i) {
      var color = PALETTE[i % PALETTE.length];
      data.push(s.values);
      var one = { label: s.label, stroke: color, width: 2, points: { show: xs.length < 40 } };
      if (bars) {
        var n = (spec.series || []).length;
        one.paths = window.uPlot.paths.bars({ size: [0.8 / n, 64], align: 0, gap: 1 });
        one.fill = color;
        one.points = { show: false };
      }
      series.push(one);
    });
    var width = Math.max(280, Math.floor(el.getBoundingClientRect().width || 600));
    var axes = [{}, { size: 60 }];
    if (categories) {
      var crowded = xs.length > 4;
      axes[0] = {
        values: function (u, ticks) { return ticks.map(function (t) { return spec.x[t] === undefined ? "" : spec.x[t]; }); },
        splits: function () { return xs; },
        rotate: crowded ? -30 : 0,
        size: crowded ? 110 : 50
      };
    }
    var opts = {
      width: width,
      height: 240,
      series: series,
      axes: axes,
      scales: { x: { time: !categories, range: categories ? function () { return [-0.5, xs.length - 0.5]; } : undefined } },
      legend: { show: (spec.series || []).length > 1, live: false }
    };
    el.textContent = "";
    el.classList.add("chart-drawn");
    new window.uPlot(opts, data, el);
  }

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () { document.querySelectorAll("[data-chart]").forEach(draw); });
})();
