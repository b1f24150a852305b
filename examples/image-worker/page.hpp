// image-api's web page: the images stored so far (GET /recent), then each
// new one as it arrives over Server-Sent Events (GET /events), newest first.
// Everything from the server goes into the page as text or as an attribute
// set through the DOM, never as HTML.
#pragma once

namespace image_worker {

inline constexpr const char* page_html = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>image-worker: arrivals</title>
<style>
  body { font-family: sans-serif; margin: 1.5em; background: #fafafa; }
  #status { color: #555; }
  #images { display: flex; flex-wrap: wrap; gap: 12px; }
  figure { margin: 0; padding: 6px; background: #fff; border: 1px solid #ddd; width: 180px; }
  figure img { width: 168px; height: 126px; object-fit: cover; display: block; background: #eee; }
  figcaption { font-size: 11px; word-break: break-all; margin-top: 4px; }
</style>
</head>
<body data-live="no">
<h1>Images as they arrive</h1>
<p id="status">connecting…</p>
<div id="images"></div>
<script>
"use strict";
const images = document.getElementById("images");
const status = document.getElementById("status");
const shown = new Set();
let count = 0;

function live() { status.textContent = count + (count === 1 ? " image" : " images") + "; live"; }

function show(e, fresh) {
  if (!e || typeof e.jobId !== "string" || shown.has(e.jobId)) return;
  shown.add(e.jobId);
  const fig = document.createElement("figure");
  fig.className = "arrived" + (fresh ? " fresh" : "");
  fig.dataset.job = e.jobId;
  const img = document.createElement("img");
  img.alt = String(e.dataId);
  img.src = String(e.url);
  const cap = document.createElement("figcaption");
  cap.textContent = e.place + " / " + e.file.split("/").pop() + " (" + e.network + ")";
  fig.append(img, cap);
  images.prepend(fig);
  count++;
  live();
}

fetch("/recent").then(r => r.json()).then(list => {
  for (const e of list) show(e, false);
}).catch(() => {}).finally(() => {
  const es = new EventSource("/events");
  es.onopen = () => { document.body.dataset.live = "yes"; live(); };
  es.onerror = () => { document.body.dataset.live = "no"; status.textContent = "reconnecting…"; };
  es.addEventListener("stored", m => {
    try { show(JSON.parse(m.data), true); } catch (err) { /* a malformed event is skipped */ }
  });
});
</script>
</body>
</html>
)html";

} // namespace image_worker
