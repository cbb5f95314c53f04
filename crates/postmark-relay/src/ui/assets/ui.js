// postmark-relay preview UI: live list updates (server-sent events) and the token-guarded actions.
// Rows come from the relay already escaped; nothing here builds HTML from message data.
"use strict";
(function () {
  const rows = document.getElementById("rows");
  if (rows && window.EventSource) {
    const events = new EventSource("/events");
    events.addEventListener("change", async function () {
      const r = await fetch("/rows" + window.location.search, { credentials: "same-origin" });
      if (r.ok) rows.innerHTML = await r.text();
    });
  }
  document.addEventListener("click", function (e) {
    const tr = e.target.closest ? e.target.closest("tr.msg") : null;
    if (tr && e.target.tagName !== "A") window.location.href = tr.dataset.href;
  });
  document.querySelectorAll("button[data-url]").forEach(function (button) {
    button.addEventListener("click", async function () {
      const token = document.getElementById("token").value;
      const out = document.getElementById("action-result");
      const r = await fetch(button.dataset.url, { method: button.dataset.method, headers: { Authorization: "Bearer " + token } });
      out.textContent = await r.text();
      if (r.ok && button.dataset.method === "DELETE") window.location.href = "/";
    });
  });
})();
