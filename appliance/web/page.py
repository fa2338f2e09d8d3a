"""The page itself: one static HTML document; every stored text reaches it through textContent, never HTML."""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Leaf appliance</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1rem; background: #f4f6f2; color: #1d2a1d; }
main { display: flex; flex-wrap: wrap; gap: 1.5rem; }
#screen { width: 480px; max-width: 100%; border: 6px solid #222; border-radius: 6px; background: #000; }
.lamp { display: inline-block; width: 1.6rem; height: 1.6rem; border-radius: 50%; margin-right: .4rem;
        background: #444; border: 2px solid #222; vertical-align: middle; }
.lamp.on.green { background: #2ecc40; } .lamp.on.amber { background: #ffb000; } .lamp.on.red { background: #e0282e; }
.lamp.blink { animation: blink .6s steps(1) infinite; }
@keyframes blink { 50% { background: #444; } }
button { font-size: 1.1rem; padding: .6rem 1.2rem; margin: .3rem .3rem .3rem 0; }
table { border-collapse: collapse; } td, th { padding: .3rem .6rem; border-bottom: 1px solid #ccc; text-align: left; }
td img { width: 96px; height: auto; }
#note { color: #8a4b00; min-height: 1.2em; }
</style>
</head>
<body>
<h1>Leaf appliance <small id="state">...</small></h1>
<main>
<section>
<img id="screen" alt="the appliance's screen">
<p><span class="lamp green" id="lamp-green"></span><span class="lamp amber" id="lamp-amber"></span><span
 class="lamp red" id="lamp-red"></span> <span id="led-meaning"></span></p>
<p><button id="press-short" type="button">Press (diagnose)</button>
<button id="press-long" type="button">Long press (export)</button></p>
<p id="pin-row" hidden><label>PIN to press: <input id="pin" type="password" inputmode="numeric"
 autocomplete="off" size="8"></label></p>
<p id="note"></p>
</section>
<section>
<h2>Latest result</h2>
<p id="result">none yet</p>
<h2>Recent history</h2>
<table><thead><tr><th>When</th><th>Photo</th><th>Crop</th><th>Condition</th><th>Verdict</th><th>Confidence</th></tr>
</thead><tbody id="history"></tbody></table>
</section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let shown = -1, historyKey = "";
function headers() {
  const h = {"X-Leaf-Press": "1", "Content-Type": "text/plain"};
  const pin = $("pin").value;
  if (pin) h["X-Leaf-Pin"] = pin;
  return h;
}
function pct(p) { return typeof p === "number" ? Math.round(p * 100) + "%" : ""; }
function describe(r) {
  if (r.verdict === "retake") return "Retake: " + (r.reason || r.condition);
  return [r.crop, r.condition].filter(Boolean).join(" - ") + " (" + r.verdict + ", " + pct(r.probability) + ")";
}
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
function render(s) {
  $("state").textContent = s.state;
  if (s.screen !== shown) { shown = s.screen; $("screen").src = "/screen.png?n=" + s.screen; }
  for (const c of ["green", "amber", "red"]) {
    const lamp = $("lamp-" + c);
    lamp.classList.toggle("on", s.leds.colour === c);
    lamp.classList.toggle("blink", s.leds.colour === c && s.leds.steps.length > 0);
  }
  $("led-meaning").textContent = s.leds.meaning || s.leds.pattern;
  $("pin-row").hidden = s.can_press && !$("pin").value;
  if (s.fault) $("note").textContent = s.fault.title + ": " + s.fault.detail;
  const latest = s.records[0];
  $("result").textContent = latest ? describe(latest) : "none yet";
  if (latest) $("result").dataset.id = latest.id;
  const key = s.records.map((r) => r.id).join();
  if (key === historyKey) return;
  historyKey = key;
  const body = $("history");
  body.replaceChildren();
  for (const r of s.records) {
    const row = document.createElement("tr");
    row.dataset.id = r.id;
    cell(row, (r.created_at || "").replace("T", " ").slice(0, 19));
    const td = document.createElement("td");
    if (r.photo) {
      const img = document.createElement("img");
      img.src = "/photo/" + encodeURIComponent(r.id) + ".jpg";
      img.alt = "photo";
      img.loading = "lazy";
      td.appendChild(img);
    }
    row.appendChild(td);
    cell(row, r.crop); cell(row, r.condition); cell(row, r.verdict); cell(row, pct(r.probability));
    body.appendChild(row);
  }
}
async function poll() {
  try {
    const pin = $("pin").value;
    const res = await fetch("/state.json", {cache: "no-store", headers: pin ? {"X-Leaf-Pin": pin} : {}});
    render(await res.json());
  } catch (e) {
    $("note").textContent = "appliance not reachable";
  }
  setTimeout(poll, 500);
}
async function press(kind) {
  $("note").textContent = "";
  try {
    const res = await fetch("/press", {method: "POST", headers: headers(), body: kind});
    const answer = await res.json();
    $("note").textContent = res.ok ? kind + " press sent" : answer.error;
    if (res.status === 403) $("pin-row").hidden = false;
  } catch (e) {
    $("note").textContent = "appliance not reachable";
  }
}
$("press-short").addEventListener("click", () => press("short"));
$("press-long").addEventListener("click", () => press("long"));
poll();
</script>
</body>
</html>
"""
