// zk-inspector's page: the recognised recipes on top, the znode tree below,
// redrawn from each snapshot the event stream sends (no reload). Everything
// from ZooKeeper enters the DOM as text (textContent) or as attributes set
// through the DOM, never as HTML: data holding "<script>" shows as those
// characters.
#pragma once

namespace inspector {

inline constexpr const char* page_html = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>zk-inspector</title>
<style>
  body { font-family: sans-serif; margin: 1.2em; background: #fafafa; color: #222; }
  #status { color: #555; }
  #views { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 1em; }
  .view { background: #fff; border: 1px solid #ccc; border-radius: 4px; padding: 8px 12px; min-width: 220px; }
  .view h3 { margin: 0 0 4px 0; font-size: 14px; }
  .view .path { font-family: monospace; font-size: 12px; color: #666; }
  .holder, .leader { font-weight: bold; color: #0a6; }
  .view ol, .view ul { margin: 4px 0; padding-left: 20px; font-size: 13px; }
  #tree { font-family: monospace; font-size: 12px; list-style: none; padding-left: 0; }
  #tree li { white-space: pre; }
  .kind { color: #06c; } .owner { color: #a50; } .data { color: #444; }
  .node { color: #999; font-size: 11px; }
</style>
</head>
<body data-live="no" data-version="0">
<h1>zk-inspector <span id="root"></span></h1>
<p id="status">connecting…</p>
<div id="views"></div>
<ul id="tree"></ul>
<script>
"use strict";
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
};
const entry = (x) => { // {node, data} as two spans
  const li = el("li");
  li.append(el("span", "data", x.data), " ", el("span", "node", x.node));
  return li;
};
const list = (cls, items, make) => {
  const l = el("ol", cls);
  for (const x of items || []) l.append(make(x));
  return l;
};

function view(v) {
  const s = el("section", "view");
  s.dataset.kind = v.kind;
  s.dataset.path = v.path;
  s.append(el("h3", null, v.kind.replace("_", " ")), el("div", "path", v.path));
  switch (v.kind) {
  case "lock": {
    const h = el("div", "holder");
    if (v.holder) h.append("held by ", el("span", "data", v.holder.data), " ", el("span", "node", v.holder.node));
    else h.textContent = "free";
    s.append(h, el("div", null, "waiting:"), list("waiters", v.waiters, entry));
    break;
  }
  case "read_write_lock":
    s.append(el("div", null, "holding:"), list("holders", v.holders, x => { const l = entry(x); l.prepend(x.mode + " "); return l; }),
             el("div", null, "waiting:"), list("waiters", v.waiters, x => { const l = entry(x); l.prepend(x.mode + " "); return l; }));
    break;
  case "leader_latch":
    s.append(el("div", null, "leader: "), el("div", "leader", v.leader === null ? "none" : v.leader),
             el("div", null, "waiting in order:"), list("waiting", v.waiting, x => el("li", null, x)));
    break;
  case "semaphore":
    s.append(el("div", null, "leases in order:"), list("leases", v.leases, entry));
    break;
  case "locking_queue":
  case "fifo_queue": {
    const d = el("div");
    d.append("depth ", el("span", "depth", v.depth));
    if (v.kind === "locking_queue") d.append(", in flight ", el("span", "in-flight", v.in_flight));
    s.append(d, el("div", "oldest", v.oldest === null ? "empty" :
                   "oldest " + v.oldest + " (" + Math.round(v.oldest_age_ms / 1000) + " s)"));
    break;
  }
  case "double_barrier":
    s.append(el("div", null, "ready: " + v.ready), list("members", v.members, x => el("li", null, x)));
    break;
  case "group":
    s.append(list("members", v.members, x => { const l = el("li"); l.append(el("span", "id", x.id), " ", el("span", "data", x.data)); return l; }));
    break;
  case "service":
    s.append(el("div", null, "service " + v.service), list("instances", v.instances, x => {
      const ports = Object.entries(x.ports || {}).map(([k, p]) => k + ":" + p).join(" ");
      return el("li", null, x.id + " " + x.address + " " + ports);
    }));
    break;
  }
  return s;
}

function draw(snap) {
  document.getElementById("root").textContent = snap.root;
  const views = document.getElementById("views");
  views.replaceChildren(...(snap.views || []).map(view));
  const tree = document.getElementById("tree");
  tree.replaceChildren(...(snap.nodes || []).map(n => {
    const li = el("li");
    li.dataset.path = n.path;
    li.append("  ".repeat(n.depth) + n.name + "  ", el("span", "kind", n.kind));
    if (n.owner) li.append(" ", el("span", "owner", n.owner));
    li.append(" ", el("span", "data", n.data));
    return li;
  }));
  document.body.dataset.version = String(snap.version);
  document.getElementById("status").textContent = (snap.nodes || []).length + " nodes" +
    (snap.truncated ? " (more not shown)" : "") + ", version " + snap.version + "; live";
}

const es = new EventSource("/events");
es.onopen = () => { document.body.dataset.live = "yes"; };
es.onerror = () => { document.body.dataset.live = "no"; document.getElementById("status").textContent = "reconnecting…"; };
es.addEventListener("snapshot", m => {
  try { draw(JSON.parse(m.data)); } catch (err) { /* a malformed snapshot is skipped */ }
});
</script>
</body>
</html>
)html";

} // namespace inspector
