// The review queue (one item at a time, with progress, filters and assignments) and the agreement view.
// Uses app.js's helpers: api, humanError, say, el, answerCard, refreshAnnotators, moves, onTab.
"use strict";

const queue = { items: [], at: 0, total: 0, labelled: 0, matching: 0, filters: null };

function queueParams(extra) {
  const p = new URLSearchParams();
  const f = queue.filters;
  if (f.model) p.set("model", f.model);
  p.set("labelled", f.labelled);
  if (f.kind) p.set("kind", f.kind);
  if (f.annotator) p.set("annotator", f.annotator);
  if (author()) p.set("mine", author());  // my earlier judgements show pressed, so a click changes them
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  return p.toString();
}

function readFilters() {
  return { model: $("#f-model").value.trim(), labelled: $("#f-labelled").value, kind: $("#f-kind").value,
           annotator: $("#f-annotator").value.trim() };
}

async function loadQueue() {
  queue.filters = readFilters();
  try {
    const q = await api("/v1/review/items?" + queueParams({ limit: 500 }));
    Object.assign(queue, { items: q.items, at: 0, total: q.total, labelled: q.labelled, matching: q.matching });
    fillModels(q.models);
    showQueueItem();
  } catch (err) { say($("#queue-status"), humanError(err), true); }
}

function fillModels(models) {  // suggestions for the model filter (a text field: there may be many)
  const list = $("#model-list");
  list.textContent = "";
  for (const m of models) list.appendChild(new Option(m, m));
}

// n of N labelled (the whole view), and where we are among the loaded items.
function showProgress() {
  const bar = $("#queue-progress");
  bar.max = Math.max(1, queue.total);
  bar.value = queue.labelled;
  const who = queue.filters && queue.filters.annotator ? " by " + queue.filters.annotator : "";
  const where = queue.items.length ? " · item " + (queue.at + 1) + " of " + queue.items.length + " shown" : "";
  bar.setAttribute("aria-valuetext", queue.labelled + " of " + queue.total + " labelled");
  say($("#queue-status"), queue.labelled + " of " + queue.total + " labelled" + who + where);
}

async function refreshProgress() {
  try {
    const q = await api("/v1/review/items?" + queueParams({ limit: 1 }));
    Object.assign(queue, { total: q.total, labelled: q.labelled });
    showProgress();
  } catch (err) { /* the next load shows the error */ }
}

function showQueueItem() {
  const box = $("#queue");
  box.textContent = "";
  $("#queue-prev").disabled = queue.at <= 0;
  $("#queue-next").disabled = queue.at >= queue.items.length - 1;
  $("#assign-one").disabled = $("#assign-all").disabled = !queue.items.length;
  showProgress();
  if (!queue.items.length) { box.appendChild(el("p", "meta", "Nothing to review with these filters.")); return; }
  const it = queue.items[queue.at];
  const turn = el("div", "turn");
  for (const m of it.messages) {
    const msg = el("div", "msg " + m.role);
    msg.appendChild(el("span", "role", m.role));
    msg.append(typeof m.content === "string" ? m.content : JSON.stringify(m.content));
    turn.appendChild(msg);
  }
  const meta = el("p", "meta item-meta",
    "model: " + (it.model || "unknown") + " · assigned to: " + (it.assignees.length ? it.assignees.join(", ") : "nobody"));
  turn.appendChild(meta);
  const row = el("div", "answers");
  turn.appendChild(row);
  const card = answerCard({ id: it.id, text: it.completion, mine: it.mine }, it.messages, row);
  $(".retry", card).hidden = true;  // a queue item is judged as it is
  card.addEventListener("refeed:changed", refreshProgress);
  box.appendChild(turn);
}

function moveQueue(step) {
  const at = queue.at + step;
  if (at < 0 || at >= queue.items.length) return;
  queue.at = at;
  showQueueItem();
  $("#queue .answer").focus();
}
moves.review = moveQueue;

$("#queue-filters").addEventListener("submit", (e) => { e.preventDefault(); loadQueue(); });
$("#queue-prev").addEventListener("click", () => moveQueue(-1));
$("#queue-next").addEventListener("click", () => moveQueue(1));

async function assign(ids) {
  const name = $("#assign-to").value.trim();
  const status = $("#assign-status");
  if (!name) { say(status, "Type the annotator's name first.", true); $("#assign-to").focus(); return; }
  say(status, "assigning…");
  try {
    const r = await api("/v1/assignments", { annotator: name, interaction_ids: ids });
    say(status, "assigned " + r.assigned + " new item" + (r.assigned === 1 ? "" : "s") + " to " + name);
    for (const it of queue.items) if (ids.includes(it.id) && !it.assignees.includes(name)) it.assignees.push(name);
    showQueueItem();
    refreshAnnotators();
  } catch (err) { say(status, humanError(err), true); }
}
$("#assign-one").addEventListener("click", () => queue.items.length && assign([queue.items[queue.at].id]));
$("#assign-all").addEventListener("click", () => queue.items.length && assign(queue.items.map((i) => i.id)));

onTab.review = () => {
  refreshAnnotators();
  if (!queue.filters) loadQueue();
};

// --- agreement ----------------------------------------------------------------------------------
function said(row, value) {
  if (value === null || value === undefined) return "—";
  if (row.kind === "thumbs" || row.kind === "rating") {
    const [lo, hi] = row.scale || [1, 5];
    return lo === 0 && hi === 1 ? (value ? "good" : "bad") : value + " of " + hi;
  }
  if (row.kind === "preference") {
    if (value === "tie") return "tie";
    if (value === "both_bad") return "both bad";
    return "prefers answer " + (row.interaction_ids.indexOf(value) + 1);
  }
  return value === "pass" ? "correct" : value === "fail" ? "wrong" : String(value);
}

$("#agreement-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const a = $("#ag-a").value.trim(), b = $("#ag-b").value.trim();
  const summary = $("#agreement-summary");
  const table = $("#agreement-table");
  try {
    const r = await api("/v1/agreement?" + new URLSearchParams({ a, b }));
    const kinds = Object.entries(r.by_kind).filter(([, v]) => v.compared)
      .map(([k, v]) => k + ": " + v.agreed + " of " + v.compared + (v.kappa == null ? "" : ", kappa " + v.kappa.toFixed(2)));
    say(summary, r.compared
      ? a + " and " + b + " both judged " + r.compared + " items; they agree on " + r.agreed + " (" +
        Math.round(100 * r.rate) + "%). " + kinds.join("; ") + "."
      : a + " and " + b + " have not judged any item in common yet.");
    $(".who-a", table).textContent = a + " said";
    $(".who-b", table).textContent = b + " said";
    const body = $("tbody", table);
    body.textContent = "";
    for (const d of r.disagreements) {
      const tr = el("tr", "disagreement");
      tr.appendChild(el("td", null, d.kind));
      tr.appendChild(el("td", null, d.prompt || ""));
      tr.appendChild(el("td", null, d.answers.map((t, i) => (d.answers.length > 1 ? (i + 1) + ": " : "") + (t || "")).join("\n")));
      tr.appendChild(el("td", "said-a", said(d, d.a)));
      tr.appendChild(el("td", "said-b", said(d, d.b)));
      body.appendChild(tr);
    }
    table.hidden = !r.disagreements.length;
  } catch (err) { say(summary, humanError(err), true); table.hidden = true; }
});

onTab.agreement = refreshAnnotators;
