// The overview: feedback over time (stacked bars drawn as inline SVG, no library), agreement between
// annotators, contradictions, and the rows each dataset builder would produce now.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1f5fae", "#d9822b", "#2e8b57", "#b3261e", "#7a4fb5", "#8c6d1f", "#c2185b", "#4a6277",
                "#00838f", "#6d8b00", "#5d4037", "#455a64"];

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// points: [{t, kind, source, n}]; by: "kind" | "source". One bar per time bucket, stacked by series.
function stackedBars(box, points, by, bucket) {
  box.textContent = "";
  if (!points.length) { box.appendChild(el("p", "meta", "No feedback yet.")); return; }
  const times = [...new Set(points.map((p) => p.t))].sort();
  const series = [...new Set(points.map((p) => p[by]))].sort();
  const count = {};
  for (const p of points) count[p.t + "|" + p[by]] = (count[p.t + "|" + p[by]] || 0) + p.n;
  const totals = times.map((t) => series.reduce((s, x) => s + (count[t + "|" + x] || 0), 0));
  const top = Math.max(1, ...totals);
  const W = Math.max(420, 60 + times.length * 34), H = 220, left = 40, bottom = 40, plotH = H - bottom - 10;
  const step = (W - left - 10) / times.length, bw = Math.max(6, Math.min(26, step * 0.7));
  const total = totals.reduce((a, b) => a + b, 0);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "chart chart-" + by,
                            "aria-label": `Feedback by ${by} per ${bucket}: ${total} rows in ${times.length} ${bucket}s; ` +
                              series.map((x) => x + " " + times.reduce((s, t) => s + (count[t + "|" + x] || 0), 0)).join(", ") });
  root.appendChild(svg("title", {}, `Feedback by ${by} per ${bucket}`));
  for (const f of [0, 0.5, 1]) {  // y grid and labels
    const y = 10 + plotH * (1 - f);
    root.appendChild(svg("line", { x1: left, x2: W - 5, y1: y, y2: y, stroke: "#ddd" }));
    root.appendChild(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, String(Math.round(top * f))));
  }
  const every = Math.ceil(times.length / Math.floor((W - left) / 70));
  times.forEach((t, i) => {
    const x = left + i * step + (step - bw) / 2;
    let y = 10 + plotH;
    series.forEach((s, j) => {
      const n = count[t + "|" + s] || 0;
      if (!n) return;
      const h = (n / top) * plotH;
      y -= h;
      const r = svg("rect", { x, y, width: bw, height: h, fill: COLORS[j % COLORS.length], class: "bar",
                              "data-series": s, "data-t": t, "data-n": n });
      r.appendChild(svg("title", {}, `${s}, ${t}: ${n}`));
      root.appendChild(r);
    });
    if (i % every === 0) {
      const label = bucket === "hour" ? t.slice(5).replace("T", " ") : t.slice(5);
      root.appendChild(svg("text", { x: x + bw / 2, y: H - bottom + 16, "text-anchor": "middle" }, label));
    }
  });
  root.appendChild(svg("line", { x1: left, x2: W - 5, y1: 10 + plotH, y2: 10 + plotH, stroke: "#888" }));
  box.appendChild(root);
  const legend = el("div", "legend");
  series.forEach((s, j) => {
    const item = el("span");
    const sw = el("i");
    sw.style.background = COLORS[j % COLORS.length];
    item.append(sw, s);
    legend.appendChild(item);
  });
  box.appendChild(legend);
}

function cells(tr, values) { for (const v of values) tr.appendChild(el("td", null, v)); return tr; }

async function loadOverview() {
  const status = $("#overview-status");
  say(status, "building…");
  try {
    const o = await api("/v1/overview");
    const t = o.timeline;
    stackedBars($("#plot-kind"), t.points, "kind", t.bucket);
    stackedBars($("#plot-source"), t.points, "source", t.bucket);
    $("#ov-statuses").textContent = "Rows by status: " +
      (Object.entries(t.statuses).map(([k, v]) => k + " " + v).join(", ") || "none") +
      ". The plots count active rows.";
    const b = $("#ov-builders tbody");
    b.textContent = "";
    for (const [name, r] of Object.entries(o.builders)) {
      const dropped = r.dropped ? Object.entries(r.dropped).map(([k, v]) => k + ": " + v).join("; ") : "";
      b.appendChild(cells(el("tr", "builder"), [name, r.rows == null ? "failed: " + r.error : String(r.rows), dropped,
                                               String(r.contradictions || 0)]));
    }
    const ag = $("#ov-agreement tbody");
    ag.textContent = "";
    for (const p of o.agreement) {
      cells(ag.appendChild(el("tr")), [p.a + " & " + p.b, String(p.compared), p.agreed + " (" + Math.round(100 * p.rate) + "%)"]);
    }
    if (!o.agreement.length) cells(ag.appendChild(el("tr")), ["no two annotators have judged the same item yet", "", ""]);
    const ul = $("#ov-contradictions");
    ul.textContent = "";
    for (const c of o.contradictions) {
      const users = (c.prompt || []).filter((m) => m.role === "user");
      ul.appendChild(el("li", null, (users.length ? users[users.length - 1].content : "(no prompt)") +
                                    " — votes " + c.votes.join(" vs ")));
    }
    if (!o.contradictions.length) ul.appendChild(el("li", "meta", "none"));
    say(status, "updated " + new Date().toLocaleTimeString());
  } catch (err) { say(status, humanError(err), true); }
}

$("#overview-refresh").addEventListener("click", loadOverview);
onTab.overview = loadOverview;
