// refeed web UI: plain JavaScript, no build step. User text only ever goes through textContent.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("refeed-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("refeed-key", keyInput.value.trim()));

async function api(path, body, method) {
  const headers = { "Content-Type": "application/json" };
  const key = keyInput.value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  const res = await fetch(path, { method: method || (body ? "POST" : "GET"), headers, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!res.ok) {
    const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : text;
    throw new Error(res.status + ": " + detail);
  }
  return data;
}

function feedback(body) {
  return api("/v1/feedback", { idempotency_key: crypto.randomUUID(), ...body });
}

function say(el, msg, isError) {
  el.textContent = msg;
  el.classList.toggle("error", !!isError);
}

// --- tabs ---
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === b));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== "tab-" + b.dataset.tab; });
}));

// --- chat ---
const history = [];  // OpenAI messages of the conversation so far
let lastId = null;   // interaction id of the answer the conversation continues from

async function ask(messages, extra) {
  const res = await api("/v1/chat/completions", { messages, ...extra });
  return { id: res.refeed.interaction_id, text: res.choices[0].message.content };
}

$("#chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const prompt = $("#prompt").value;
  if (!prompt.trim()) return;
  $("#prompt").value = "";
  history.push({ role: "user", content: prompt });
  const turn = document.createElement("div");
  turn.className = "turn";
  const u = document.createElement("div");
  u.className = "user-msg";
  u.textContent = prompt;
  turn.appendChild(u);
  const row = document.createElement("div");
  row.className = "answers";
  turn.appendChild(row);
  $("#conversation").appendChild(turn);
  const messages = history.slice();
  const previous = lastId;
  const followup = async (next) => {  // the next user message says something about the previous answer
    if (previous) await feedback({ kind: "followup", interaction_id: previous, text: prompt,
                                   followup_interaction_id: next, source: "implicit" });
  };
  try {
    if ($("#compare").checked) {
      const [a, b] = [await ask(messages, { parent_id: lastId }), await ask(messages, { parent_id: lastId })];
      const cards = [a, b].map((ans, i) => answerCard(ans, messages, row, "ABC"[i]));
      const pick = document.createElement("div");
      pick.className = "pick";
      const status = document.createElement("span");
      status.className = "status";
      const choices = [["A is better", a, b, {}], ["B is better", b, a, {}], ["Tie", a, b, { tie: true }],
                       ["Both bad", a, b, { both_bad: true }]];
      for (const [label, chosen, rejected, extra] of choices) {
        const btn = document.createElement("button");
        btn.textContent = label;
        btn.className = "pick-" + label.split(" ")[0].toLowerCase();
        btn.addEventListener("click", async () => {
          try {
            await feedback({ kind: "preference", interaction_id: chosen.id, rejected: rejected.id,
                             shown_first: chosen === a ? "chosen" : "rejected", ...extra });
            say(status, "preference saved");
          } catch (err) { say(status, err.message, true); }
        });
        pick.appendChild(btn);
      }
      pick.appendChild(status);
      turn.appendChild(pick);
      history.push({ role: "assistant", content: a.text });
      lastId = a.id;
      void cards;
      await followup(a.id);
    } else {
      const a = await ask(messages, { parent_id: lastId });
      answerCard(a, messages, row);
      history.push({ role: "assistant", content: a.text });
      lastId = a.id;
      await followup(a.id);
    }
  } catch (err) {
    const s = document.createElement("div");
    s.className = "status error";
    s.textContent = err.message;
    turn.appendChild(s);
  }
});

function codePoints(s) { return Array.from(s).length; }

function answerCard(ans, messages, container, label) {
  const card = $("#answer-template").content.firstElementChild.cloneNode(true);
  card.dataset.id = ans.id;
  if (label) card.dataset.label = label;
  const text = $(".text", card);
  text.textContent = ans.text;
  const status = $(".status", card);
  const send = async (body, msg) => {
    try { await feedback({ interaction_id: card.dataset.id, ...body }); say(status, msg); }
    catch (err) { say(status, err.message, true); }
  };
  $(".thumb-up", card).addEventListener("click", () => send({ kind: "thumbs", up: true }, "👍 saved"));
  $(".thumb-down", card).addEventListener("click", () => send({ kind: "thumbs", up: false }, "👎 saved"));
  $(".rating", card).addEventListener("change", (e) => {
    if (e.target.value) send({ kind: "rating", score: Number(e.target.value), scale: [1, 5] }, "rating saved");
  });
  $(".copy", card).addEventListener("click", () => {
    if (navigator.clipboard) navigator.clipboard.writeText(text.textContent).catch(() => {});
    send({ kind: "signal", signal: "copy", source: "implicit" }, "copy logged");
  });
  $(".verify-pass", card).addEventListener("click", () => send({ kind: "outcome", passed: true, verifier: "reviewer" }, "outcome saved"));
  $(".verify-fail", card).addEventListener("click", () => send({ kind: "outcome", passed: false, verifier: "reviewer" }, "outcome saved"));
  $(".retry", card).addEventListener("click", async () => {
    try {
      const again = await ask(messages, { retry_of: card.dataset.id });
      answerCard(again, messages, container, label);
      ranker(container);
      say(status, "regenerated");
    } catch (err) { say(status, err.message, true); }
  });
  const toggle = (cls) => { const f = $("form." + cls, card); f.hidden = !f.hidden; return f; };
  $(".show-critique", card).addEventListener("click", () => toggle("critique"));
  $(".show-edit", card).addEventListener("click", () => { const f = toggle("edit"); $("textarea", f).value = text.textContent; });
  $("form.critique", card).addEventListener("submit", (e) => {
    e.preventDefault();
    send({ kind: "critique", text: $("textarea", e.target).value }, "critique saved");
  });
  $("form.edit", card).addEventListener("submit", (e) => {
    e.preventDefault();
    send({ kind: "edit", text: $("textarea", e.target).value }, "edit saved");
  });
  $(".show-span", card).addEventListener("click", () => {
    const sel = window.getSelection();
    if (!sel.rangeCount || sel.isCollapsed || !text.contains(sel.anchorNode) || !text.contains(sel.focusNode)) {
      say(status, "select part of the answer first", true);
      return;
    }
    const range = sel.getRangeAt(0);
    const pre = document.createRange();
    pre.selectNodeContents(text);
    pre.setEnd(range.startContainer, range.startOffset);
    const full = text.textContent;
    // Browser offsets count UTF-16 units; the store counts Unicode code points.
    const startUnits = pre.toString().length;
    const endUnits = startUnits + range.toString().length;
    const form = $("form.span", card);
    form.dataset.start = codePoints(full.slice(0, startUnits));
    form.dataset.end = codePoints(full.slice(0, endUnits));
    $(".quote", form).textContent = full.slice(startUnits, endUnits);
    form.hidden = false;
  });
  $("form.span", card).addEventListener("submit", (e) => {
    e.preventDefault();
    const f = e.target;
    send({ kind: "span", start: Number(f.dataset.start), end: Number(f.dataset.end),
           category: $(".category", f).value, severity: Number($(".severity", f).value),
           comment: $(".comment", f).value || null }, "span saved");
  });
  container.appendChild(card);
  return card;
}

// Once a turn has several answers ("try again"), they can be ranked: 1 is best, equal numbers are a tie.
function ranker(row) {
  const cards = Array.from(row.querySelectorAll(":scope > .answer"));
  for (const card of cards) {
    let sel = $(".rank", card);
    if (!sel) {
      sel = document.createElement("select");
      sel.className = "rank";
      sel.title = "rank (1 = best; equal = tie)";
      $(".tools", card).appendChild(sel);
    }
    const keep = sel.value;
    sel.textContent = "";
    for (let r = 1; r <= cards.length; r++) sel.appendChild(new Option("rank " + r, String(r)));
    sel.value = keep || String(cards.indexOf(card) + 1);
  }
  let bar = row.nextElementSibling;
  if (!bar || !bar.classList.contains("ranking")) {
    bar = document.createElement("div");
    bar.className = "ranking";
    const btn = document.createElement("button");
    btn.className = "save-ranking";
    btn.textContent = "Save ranking";
    const status = document.createElement("span");
    status.className = "status";
    btn.addEventListener("click", async () => {
      const groups = new Map();
      for (const card of row.querySelectorAll(":scope > .answer")) {
        const r = Number($(".rank", card).value);
        groups.set(r, [...(groups.get(r) || []), card.dataset.id]);
      }
      const ranking = [...groups.keys()].sort((x, y) => x - y).map((r) => {
        const ids = groups.get(r);
        return ids.length === 1 ? ids[0] : ids;
      });
      try { await feedback({ kind: "ranking", ranking }); say(status, "ranking saved"); }
      catch (err) { say(status, err.message, true); }
    });
    bar.append(btn, status);
    row.after(bar);
  }
}

// --- principles ---
$("#principle-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await feedback({ kind: "principle", text: $("#principle-text").value,
                     applies_when: $("#principle-when").value || null, not_when: $("#principle-not").value || null });
    say($("#principle-status"), "principle saved");
    e.target.reset();
  } catch (err) { say($("#principle-status"), err.message, true); }
});

// --- review queue: one unlabelled interaction at a time, oldest first ---
const queue = { items: [], at: 0 };

function showQueueItem() {
  const box = $("#queue");
  box.textContent = "";
  $("#queue-next").hidden = queue.at >= queue.items.length - 1;
  if (queue.at >= queue.items.length) { say($("#queue-status"), "nothing left to review"); return; }
  say($("#queue-status"), (queue.at + 1) + " / " + queue.items.length + " unlabelled");
  const it = queue.items[queue.at];
  const turn = document.createElement("div");
  turn.className = "turn";
  const u = document.createElement("div");
  u.className = "user-msg";
  u.textContent = it.messages.map((m) => m.role + ": " + (m.content || "")).join("\n");
  turn.appendChild(u);
  const row = document.createElement("div");
  row.className = "answers";
  turn.appendChild(row);
  answerCard({ id: it.id, text: it.completion }, it.messages, row);
  box.appendChild(turn);
}

$("#load-queue").addEventListener("click", async () => {
  try {
    queue.items = await api("/v1/review?limit=50");
    queue.at = 0;
    showQueueItem();
  } catch (err) { say($("#queue-status"), err.message, true); }
});
$("#queue-next").addEventListener("click", () => { queue.at += 1; showQueueItem(); });

// --- export ---
document.querySelectorAll(".export").forEach((b) => b.addEventListener("click", async () => {
  const headers = {};
  const key = keyInput.value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  try {
    const res = await fetch(b.dataset.path, { headers });
    if (!res.ok) throw new Error(res.status + ": " + (await res.text()));
    const blob = await res.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = b.dataset.path.split("/").pop() + ".jsonl";
    a.click();
    say($("#export-status"), "downloaded " + blob.size + " bytes");
  } catch (err) { say($("#export-status"), err.message, true); }
}));
