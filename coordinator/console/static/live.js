// Warren console: live updates for the admin pages (no inline script; the
// pages work without it). It listens to /admin/events (server-sent
// events) and updates the elements a page marks:
//   [data-node-id="12"] [data-live="presence"]  online / offline
//   [data-live="online"], [data-live="offline"], [data-live="total"]  node counts
//   [data-live="policy-version"], [data-live="policy-rejected"]  policy status
"use strict";
(function () {
  function marked() {
    return document.querySelector("[data-node-id], [data-live]") !== null;
  }
  function setText(name, value) {
    document.querySelectorAll('[data-live="' + name + '"]').forEach(function (el) {
      el.textContent = String(value);
    });
  }
  function setPresence(el, online) {
    el.textContent = online ? "online" : "offline";
    el.classList.toggle("on", online);
    el.classList.toggle("off", !online);
  }
  function onPresence(ev) {
    var d = JSON.parse(ev.data);
    var on = new Set(d.on.map(String));
    document.querySelectorAll("[data-node-id]").forEach(function (row) {
      var id = row.getAttribute("data-node-id");
      var el = row.querySelector('[data-live="presence"]');
      if (!el) return;
      if (d.full) {
        setPresence(el, on.has(id));
      } else if (on.has(id)) {
        setPresence(el, true);
      } else if (d.off.map(String).indexOf(id) >= 0) {
        setPresence(el, false);
      }
    });
    setText("online", d.online);
    setText("offline", d.offline);
    setText("total", d.total);
  }
  function onPolicy(ev) {
    var d = JSON.parse(ev.data);
    setText("policy-version", d.version);
    document.querySelectorAll('[data-live="policy-rejected"]').forEach(function (el) {
      el.hidden = d.rejected === "";
      el.textContent = d.rejected === "" ? "" : "The policy file on disk was rejected: " + d.rejected;
    });
  }
  function start() {
    if (!marked() || typeof EventSource === "undefined") return;
    var es = new EventSource("/admin/events");
    es.addEventListener("presence", onPresence);
    es.addEventListener("policy", onPolicy);
    es.addEventListener("end", function () { es.close(); });
    window.addEventListener("pagehide", function () { es.close(); });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
