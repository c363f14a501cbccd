//! The page at `/`: a live dashboard (plain HTML and a little JavaScript, no build step).

/// The dashboard: buttons that call `/slow`, `/api/limited` and `/me` and show, for each
/// call, the status, `X-Cache`, `Age`, `RateLimit`, `Retry-After` and the elapsed time;
/// who is logged in; and live counters read from `/metrics` (cache hit ratio, `429`s,
/// sessions) with a small chart. Works without JavaScript as a list of links and forms.
pub const INDEX_HTML: &str = r##"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>kv demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:0 .2em}
section{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:.8rem 0}
h1{margin:.2rem 0}h2{font-size:1.05rem;margin:.2rem 0 .5rem}
button{font:inherit;padding:.25rem .7rem;margin:0 .3rem .3rem 0;cursor:pointer}
table{border-collapse:collapse;width:100%;font-size:.9rem}
td,th{border-bottom:1px solid #eee;padding:.15rem .4rem;text-align:left;white-space:nowrap}
td.wrap{white-space:normal;word-break:break-all}
.s2{color:#17692b}.s4{color:#b3261e;font-weight:600}
.stats{display:flex;gap:1.5rem;flex-wrap:wrap}.stat b{display:block;font-size:1.6rem}
#who b{color:#17692b}
</style>
</head>
<body>
<h1>kv demo</h1>
<p>Caching, sessions and rate limiting from one key-value store: the embedded memory
store by default, Redis when <code>REDIS_URL</code> is set (then several replicas share
everything).</p>

<section id="session">
<h2>Session</h2>
<p id="who">Checking…</p>
<form id="login" method="post" action="/login"><label>User <input id="user" name="user" required maxlength="64"></label>
<button id="login-button">Log in</button></form>
<form id="logout" method="post" action="/logout"><button id="logout-button">Log out</button></form>
</section>

<section id="metrics">
<h2>Live counters <small>(from <code>/metrics</code>, every 2 s)</small></h2>
<div class="stats">
<div class="stat">cache hit ratio<b id="hit-ratio">–</b></div>
<div class="stat">cache hits / misses<b id="hits">–</b></div>
<div class="stat">429s<b id="denied">–</b></div>
<div class="stat">sessions created<b id="sessions">–</b></div>
</div>
<svg id="chart" width="100%" height="90" viewBox="0 0 300 90" preserveAspectRatio="none" aria-label="requests per 2 s: cache hits, misses and 429s">
<polyline id="line-hits" fill="none" stroke="#17692b" stroke-width="2" points=""/>
<polyline id="line-misses" fill="none" stroke="#8a6d00" stroke-width="2" points=""/>
<polyline id="line-denied" fill="none" stroke="#b3261e" stroke-width="2" points=""/>
</svg>
<small>per 2 s: <span style="color:#17692b">cache hits</span>, <span style="color:#8a6d00">misses</span>, <span style="color:#b3261e">429s</span></small>
</section>

<section id="try">
<h2>Try it</h2>
<button id="call-slow">GET /slow</button>
<button id="call-limited">GET /api/limited ×3</button>
<button id="call-me">GET /me</button>
<button id="clear">Clear</button>
<p><small><a href="/slow">/slow</a> takes 500 ms and is cached 10 s by kv (<code>X-Cache</code>,
<code>Age</code>; the browser is told to ask every time, so you see kv's cache and not its own).
<a href="/api/limited">/api/limited</a>: 5 per 10 s per user, 20 per 10 s per address; the 6th
gets <code>429</code> with <code>Retry-After</code>. <a href="/me">/me</a>: your session.
<a href="/healthz">/healthz</a>, <a href="/metrics">/metrics</a>.</small></p>
<table><thead><tr><th>#</th><th>request</th><th>status</th><th>X-Cache</th><th>Age</th><th>RateLimit</th><th>Retry-After</th><th>ms</th><th>body</th></tr></thead>
<tbody id="calls"></tbody></table>
</section>


<script>
"use strict";
const $ = (id) => document.getElementById(id);
let calls = 0;
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
async function call(path) {
  const started = performance.now();
  const row = $("calls").insertRow(0);
  row.dataset.path = path;
  cell(row, ++calls);
  cell(row, "GET " + path);
  try {
    const r = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const body = await r.text();
    const ms = Math.round(performance.now() - started);
    const h = (n) => r.headers.get(n) || "–";
    cell(row, r.status, r.status < 400 ? "s2" : "s4").className += " status";
    cell(row, h("x-cache")).className = "x-cache";
    cell(row, h("age"));
    cell(row, h("ratelimit"));
    cell(row, h("retry-after")).className = "retry-after";
    cell(row, ms);
    let shown = body;
    try { const j = JSON.parse(body); shown = j.message || JSON.stringify(j); } catch (_) {}
    cell(row, shown, "wrap");
    row.dataset.status = r.status;
    if (path === "/me") showUser(JSON.parse(body));
  } catch (e) {
    cell(row, "failed: " + e, "s4");
  }
}
function showUser(me) {
  const who = $("who");
  who.textContent = "";
  if (me.user) {
    who.append("Logged in as ");
    const b = document.createElement("b");
    b.id = "user-name";
    b.textContent = me.user;
    who.append(b, " (" + me.visits + " visits in this session).");
  } else {
    who.append("Not logged in (an anonymous session, " + me.visits + " visits).");
  }
  who.dataset.user = me.user || "";
}
$("call-slow").onclick = () => call("/slow");
$("call-me").onclick = () => call("/me");
$("call-limited").onclick = async () => { for (let i = 0; i < 3; i++) await call("/api/limited"); };
$("clear").onclick = () => { $("calls").textContent = ""; calls = 0; };

// The counters: summed samples of the Prometheus text format.
function sum(text, name, label) {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    if (label && !line.includes(label)) continue;
    const v = parseFloat(line.slice(line.lastIndexOf(" ") + 1));
    if (!isNaN(v)) total += v;
  }
  return total;
}
const history = Array.from({ length: 30 }, () => ({ hits: 0, misses: 0, denied: 0 }));
let last = null;
async function poll() {
  try {
    const text = await (await fetch("/metrics")).text();
    const now = {
      hits: sum(text, "kv_cache_requests_total", 'outcome="hit"'),
      misses: sum(text, "kv_cache_requests_total", 'outcome="miss"'),
      denied: sum(text, "kv_rate_limit_decisions_total", 'outcome="denied"'),
      sessions: sum(text, "kv_session_creations_total"),
    };
    const looked = now.hits + now.misses;
    $("hit-ratio").textContent = looked ? Math.round(100 * now.hits / looked) + " %" : "–";
    $("hits").textContent = now.hits + " / " + now.misses;
    $("denied").textContent = now.denied;
    $("sessions").textContent = now.sessions;
    if (last) {
      history.push({ hits: now.hits - last.hits, misses: now.misses - last.misses, denied: now.denied - last.denied });
      if (history.length > 30) history.shift();
      draw();
    }
    last = now;
  } catch (_) {}
}
function draw() {
  const top = Math.max(1, ...history.flatMap((p) => [p.hits, p.misses, p.denied]));
  for (const k of ["hits", "misses", "denied"]) {
    $("line-" + k).setAttribute("points", history.map((p, i) => (i * 10) + "," + (88 - 84 * p[k] / top)).join(" "));
  }
}
fetch("/me", { headers: { Accept: "application/json" } }).then((r) => r.json()).then(showUser).catch(() => {});
poll();
setInterval(poll, 2000);
</script>
</body>
</html>
"##;
