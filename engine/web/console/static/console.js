/* Tact console: progressive enhancement only. Every page and form works without this file.
   Each enhancement looks for its own data attribute and does nothing when absent:
     data-poll="<url>"          poll a JSON endpoint and update [data-field="<key>"] children
     data-chart="<script id>"   draw a chart (console-charts.js) from a JSON <script> block
     data-confirm="<text>"      ask before submitting a form (the server asks again anyway) */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-poll-every") || "2000", 10);
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          el.querySelectorAll("[data-field]").forEach(function (f) {
            var key = f.getAttribute("data-field");
            if (!(key in data)) { return; }
            if (f.tagName === "PROGRESS") { f.value = data[key]; } else { f.textContent = String(data[key]); }
          });
          if (data.done) {
            var reload = el.getAttribute("data-poll-done");
            if (reload) { window.location.assign(reload); }
            return;
          }
          window.setTimeout(tick, every);
        })
        .catch(function () { window.setTimeout(tick, every * 2); });
    }
    window.setTimeout(tick, every);
  }

  ready(function () {
    confirmForms();
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
})();
