/* Template editor: check the variant while the marketer types (progressive enhancement).
   Without this file the "Check" button does the same by a full form POST. The check runs
   on the server (lint and the sandboxed render); the rendered email comes back as a URL
   for the sandboxed preview frame, never as HTML put into this page. */
(function () {
  "use strict";
  var DELAY = 900;

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function text(el, value) { if (el) { el.textContent = value == null ? "" : String(value); } }

  function show(result, data) {
    var summary = document.getElementById("check-summary");
    var list = document.getElementById("findings");
    if (summary) {
      text(summary, data.error || data.summary || "");
      summary.className = "notice " + (data.ok ? "notice-ok" : "notice-error");
    }
    if (list) {
      while (list.firstChild) { list.removeChild(list.firstChild); }
      (data.findings || []).forEach(function (f) {
        var li = document.createElement("li");
        li.className = "sev-" + f.level;
        var level = document.createElement("strong");
        text(level, f.level);
        var where = document.createElement("code");
        text(where, f.where);
        li.appendChild(level);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(where);
        li.appendChild(document.createTextNode(": " + f.message));
        list.appendChild(li);
      });
    }
    var frame = document.getElementById("preview-frame");
    if (frame && data.frame) { frame.setAttribute("src", data.frame); }
    text(document.getElementById("preview-subject"), data.subject || "");
    var pre = document.getElementById("preview-text");
    if (pre && data.text != null) { text(pre, data.text); }
    result.setAttribute("data-checked", String(Date.now()));
  }

  ready(function () {
    var form = document.getElementById("variant-form");
    var result = document.getElementById("check-result");
    if (!form || !result || !window.fetch || !window.FormData) { return; }
    var url = form.getAttribute("data-check-url");
    var source = form.querySelector("textarea[name=source]");
    var timer = null;
    var seq = 0;
    function check() {
      var mine = ++seq;
      var body = new FormData(form);
      body.set("do", "check");
      fetch(url, { method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (data) { if (mine === seq) { show(result, data); } })
        .catch(function () { /* the Check button still works */ });
    }
    source.addEventListener("input", function () {
      if (timer) { window.clearTimeout(timer); }
      timer = window.setTimeout(check, DELAY);
    });
  });
})();
