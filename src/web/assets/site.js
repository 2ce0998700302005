// outagewatch pages work without this file; with it, times show in the
// reader's time zone, the page refreshes its numbers while open, and the
// report buttons post in place and thank the person.
"use strict";

function localize(root) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  root.querySelectorAll("time[datetime]").forEach((el) => {
    const d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) el.textContent = d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  });
  root.querySelectorAll("svg.chart text[data-t]").forEach((el) => {
    const d = new Date(Number(el.getAttribute("data-t")) * 1000);
    el.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  });
  document.querySelectorAll(".tz").forEach((el) => { el.textContent = "shown in your time zone (" + zone + ")"; });
}

// Updates wait while the reader is using a form on the page (a half-made
// choice or a focused field would be lost) and while they are paused.
let paused = false;
let dirty = false;
function busy() {
  const live = document.getElementById("live");
  const active = document.activeElement;
  return paused || dirty || (live && active && live.contains(active) && active.matches("input, select, textarea"));
}

async function refresh(force) {
  if (!force && busy()) return;
  try {
    // Revalidate (ETag) rather than take the browser cache's copy.
    const res = await fetch(location.href, { cache: "no-cache", headers: { Accept: "text/html" } });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const fresh = doc.getElementById("live");
    const live = document.getElementById("live");
    if (!fresh || !live) return;
    // Keep what the person just did (the thank-you) across the swap.
    const thanks = live.querySelector("#thanks");
    live.replaceWith(fresh);
    const newThanks = fresh.querySelector("#thanks");
    if (thanks && newThanks && thanks.textContent) { newThanks.replaceWith(thanks); }
    document.title = doc.title;
    localize(fresh);
    wireForms(fresh);
  } catch (e) { /* offline for a moment: the next refresh tries again */ }
}

function clientId() {
  const m = document.cookie.match(/(?:^|; )ow_client=([^;]+)/);
  if (m) return m[1];
  const id = (crypto.randomUUID && crypto.randomUUID()) || String(Math.random()).slice(2) + Date.now();
  document.cookie = "ow_client=" + id + "; Max-Age=31536000; Path=/; SameSite=Lax";
  return id;
}

function wireForms(root) {
  root.querySelectorAll("form.report-form").forEach((form) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = ev.submitter;
      const out = document.getElementById("thanks");
      const body = { service: form.dataset.service, problem: button ? button.value : "other", client_id: clientId() };
      form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      try {
        const res = await fetch(form.action, { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) });
        const answer = await res.json().catch(() => ({}));
        out.classList.toggle("error", !res.ok);
        if (res.status === 202) {
          const what = button ? button.textContent.trim() : "problem";
          out.textContent = answer.counted
            ? "Thanks: your report (" + what + ") is counted."
            : "Thanks: you already reported this service recently, and we count one report per person.";
          // The numbers are cached for about a second; fetch them after that.
          setTimeout(() => refresh(true), 1500);
        } else {
          out.textContent = answer.detail || "Your report could not be sent; please try again.";
        }
      } catch (e) {
        out.classList.add("error");
        out.textContent = "Your report could not be sent; please check your connection.";
      } finally {
        form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      }
    });
  });
}

function pauseControl(secs) {
  const footer = document.querySelector("footer");
  if (!footer) return;
  const button = document.createElement("button");
  button.type = "button";
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Pause updates (every " + secs + " s)";
  button.addEventListener("click", () => {
    paused = !paused;
    button.setAttribute("aria-pressed", String(paused));
    button.textContent = paused ? "Resume updates" : "Pause updates (every " + secs + " s)";
  });
  footer.prepend(button);
}

document.addEventListener("DOMContentLoaded", () => {
  localize(document);
  wireForms(document);
  document.addEventListener("change", (ev) => {
    if (ev.target.closest && ev.target.closest("#live form")) dirty = true;
  });
  const secs = Number(document.body.dataset.refresh || 0);
  if (secs > 0) {
    setInterval(refresh, secs * 1000);
    pauseControl(secs);
  }
});
