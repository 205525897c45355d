// refeed web UI: plain JavaScript, no build step. User and model text only ever goes through textContent.
//
// Feedback controls keep their state: the first click writes a judgement, a second click on the same
// choice retracts it (POST /v1/feedback/{id}/retract), another choice supersedes it
// (POST /v1/feedback/{id}/supersede): the store keeps every row, with its status.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const keyInput = $("#api-key");
const nameInput = $("#annotator");
keyInput.value = localStorage.getItem("refeed-key") || "";
nameInput.value = localStorage.getItem("refeed-annotator") || "";
keyInput.addEventListener("change", () => localStorage.setItem("refeed-key", keyInput.value.trim()));
nameInput.addEventListener("input", () => localStorage.setItem("refeed-annotator", nameInput.value.trim()));
nameInput.addEventListener("change", () => {
  const name = author();
  if (name) api("/v1/annotators", { name }).catch(() => {});  // registration needs an admin key; optional
  refreshAnnotators();
});

function author() { return nameInput.value.trim() || null; }

class ApiError extends Error {
  constructor(status, data) { super("HTTP " + status); this.status = status; this.data = data; }
}

async function api(path, body, method) {
  const headers = { "Content-Type": "application/json" };
  const key = keyInput.value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  const res = await fetch(path, { method: method || (body ? "POST" : "GET"), headers,
                                  body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// --- errors a person can read ------------------------------------------------------------------
function fieldName(loc) {
  // ["body", "rating", "score"] -> "score"; the discriminator (the kind) and "body" say nothing to a person.
  const parts = (loc || []).filter((p, i) => !(i === 0 && (p === "body" || p === "query")));
  if (parts.length > 1 && typeof parts[0] === "string" && /^[a-z_]+$/.test(parts[0])) parts.shift();
  return parts.join(" → ") || "the request";
}

function describeDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail.replace(/^invalid (\w+) feedback: /, "").replace(/field '([^']+)'/g, "$1");
  if (Array.isArray(detail)) {
    return detail.map((d) => fieldName(d.loc) + ": " + String(d.msg || "").replace(/^Value error, /, "")).join("; ");
  }
  return String(detail.message || "");
}

function humanError(err) {
  if (!(err instanceof ApiError)) {
    return "Cannot reach the refeed server. Is it still running? (" + err.message + ")";
  }
  const why = describeDetail(err.data && err.data.detail);
  const s = err.status;
  if (s === 401) return "The server refused the API key (" + (why || "missing or invalid") +
                        "). Paste a valid key in the API key box at the top.";
  if (s === 403) return "This key is not allowed to do that: " + why;
  if (s === 404) return "Not found: " + (why || "it may have been deleted") + ".";
  if (s === 409) return "Conflict: " + why;
  if (s === 413) return "Too large to send: " + (why || "shorten the text") + ".";
  if (s === 422) return "Please check the input. " + (why ? why.charAt(0).toUpperCase() + why.slice(1) : "") + ".";
  if (s === 429) return "The server is busy; try again in a moment.";
  if (s >= 500) return "The server failed (error " + s + "). Try again; if it keeps failing, look at the server log.";
  return "The request failed (error " + s + "): " + why;
}

function say(el, msg, isError) {
  el.textContent = msg;
  el.classList.toggle("error", !!isError);
  el.setAttribute("role", isError ? "alert" : "status");
}

// Tells whoever shows progress (the review queue) that something under `node` was stored or withdrawn.
function changed(node) { node.dispatchEvent(new CustomEvent("refeed:changed", { bubbles: true })); }

function withKey(body) {
  return { idempotency_key: crypto.randomUUID(), author: author(), ...body };
}

function feedback(body) { return api("/v1/feedback", withKey(body)); }

// A choice that remembers what was stored: click once to save, the same again to retract, another to change.
function makeChoice(onChange) { return { value: null, id: null, busy: false, onChange }; }

async function choose(slot, value, body, status, label) {
  if (slot.busy) return;  // a double click must not write twice
  slot.busy = true;
  say(status, "saving…");
  try {
    if (slot.id && slot.value === value) {
      await api("/v1/feedback/" + slot.id + "/retract", {});
      slot.id = null; slot.value = null;
      say(status, label + " removed (kept in the history as retracted)");
    } else if (slot.id) {
      const r = await api("/v1/feedback/" + slot.id + "/supersede", withKey(body));
      slot.id = r.id; slot.value = value;
      say(status, "changed to " + label);
    } else {
      const r = await feedback(body);
      slot.id = r.id; slot.value = value;
      say(status, label + " saved");
    }
    changed(status);
  } catch (err) { say(status, humanError(err), true); }
  finally { slot.busy = false; if (slot.onChange) slot.onChange(slot); }
}

function pressed(buttons, isOn) { for (const b of buttons) b.setAttribute("aria-pressed", String(isOn(b))); }

// --- tabs ---------------------------------------------------------------------------------------
const onTab = {};
function showTab(name) {
  for (const t of $$(".tab")) t.setAttribute("aria-selected", String(t.dataset.tab === name));
  for (const p of $$(".panel")) p.hidden = p.id !== "tab-" + name;
  if (onTab[name]) onTab[name]();
}
for (const b of $$(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
function currentTab() { const t = $(".tab[aria-selected=true]"); return t ? t.dataset.tab : "chat"; }

// --- chat ---------------------------------------------------------------------------------------
const history = [];  // OpenAI messages of the conversation so far
let lastId = null;   // interaction id of the answer the conversation continues from

async function ask(messages, extra) {
  const res = await api("/v1/chat/completions", { messages, ...extra });
  return { id: res.refeed.interaction_id, text: res.choices[0].message.content };
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

$("#chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const prompt = $("#prompt").value;
  if (!prompt.trim()) return;
  const send = $("#send");
  send.disabled = true;
  $("#prompt").value = "";
  history.push({ role: "user", content: prompt });
  const turn = el("div", "turn");
  turn.appendChild(el("div", "user-msg", prompt));
  const row = el("div", "answers");
  turn.appendChild(row);
  $("#conversation").appendChild(turn);
  const messages = history.slice();
  const previous = lastId;
  try {
    let first;
    if ($("#compare").checked) {
      const a = await ask(messages, { parent_id: lastId });
      const b = await ask(messages, { parent_id: lastId });
      comparePicker(turn, row, messages, a, b);
      first = a;
    } else {
      first = await ask(messages, { parent_id: lastId });
      answerCard(first, messages, row);
    }
    history.push({ role: "assistant", content: first.text });
    lastId = first.id;
    if (previous) {  // the next user message says something about the previous answer
      await feedback({ kind: "followup", interaction_id: previous, text: prompt, followup_interaction_id: first.id,
                       source: "implicit" });
    }
  } catch (err) {
    const s = el("div", "status error", humanError(err));
    s.setAttribute("role", "alert");
    turn.appendChild(s);
  } finally { send.disabled = false; $("#prompt").focus(); }
});

// Side by side: answers A and B, then A better / B better / tie / both bad, one choice at a time.
function comparePicker(turn, row, messages, a, b) {
  turn.classList.add("compare");
  const cards = [a, b].map((ans, i) => answerCard(ans, messages, row, "AB"[i]));
  for (const c of cards) $(".retry", c).hidden = true;  // a side-by-side pair stays a pair
  const pick = el("div", "pick");
  pick.setAttribute("role", "group");
  pick.setAttribute("aria-label", "Which answer is better?");
  pick.appendChild(el("span", "caption", "Two answers to the same message, in random order. Which is better?"));
  const status = el("span", "status");
  status.setAttribute("role", "status");
  const choices = [
    ["a", "A is better", "A better", { interaction_id: a.id, rejected: b.id, shown_first: "chosen" }],
    ["b", "B is better", "B better", { interaction_id: b.id, rejected: a.id, shown_first: "rejected" }],
    ["tie", "Tie", "tie", { interaction_id: a.id, rejected: b.id, shown_first: "chosen", tie: true }],
    ["both_bad", "Both bad", "both bad", { interaction_id: a.id, rejected: b.id, shown_first: "chosen", both_bad: true }],
  ];
  const keys = { a: "a", b: "b", tie: "t", both_bad: "x" };
  const buttons = [];
  const slot = makeChoice(() => pressed(buttons, (x) => x.dataset.value === slot.value));
  for (const [value, text, label, body] of choices) {
    const btn = el("button", "pick-" + value.replace("_", "-"));
    btn.type = "button";
    btn.dataset.value = value;
    btn.setAttribute("aria-pressed", "false");
    btn.append(text + " ");
    btn.appendChild(el("kbd", null, keys[value]));
    btn.addEventListener("click", () => choose(slot, value, { kind: "preference", ...body }, status, label));
    buttons.push(btn);
    pick.appendChild(btn);
  }
  pick.appendChild(status);
  turn.appendChild(pick);
  turn._pick = (value) => { const btn = buttons.find((x) => x.dataset.value === value); if (btn) btn.click(); };
  return cards;
}

function codePoints(s) { return Array.from(s).length; }

function answerCard(ans, messages, container, letter) {
  const card = $("#answer-template").content.firstElementChild.cloneNode(true);
  card.dataset.id = ans.id;
  const side = $(".side", card);
  if (letter) {
    card.dataset.label = letter;
    side.hidden = false;
    side.dataset.letter = letter;
    side.append("Answer " + letter);
  }
  card.setAttribute("aria-label", letter ? "Answer " + letter : "Answer");
  const text = $(".text", card);
  text.textContent = ans.text;
  if (!ans.text) text.appendChild(el("em", "hint", "(empty answer)"));
  const status = $(".status", card);
  const send = async (body, msg, form) => {
    say(status, "saving…");
    try {
      await feedback({ interaction_id: ans.id, ...body });
      say(status, msg);
      if (form) closeForm(form);
      changed(status);
    } catch (err) { say(status, humanError(err), true); }
  };
  $(".copy", card).addEventListener("click", () => {
    if (navigator.clipboard) navigator.clipboard.writeText(ans.text).catch(() => {});
    send({ kind: "signal", signal: "copy", source: "implicit" }, "copied (logged as a signal)");
  });
  $(".retry", card).addEventListener("click", async (e) => {
    const btn = e.currentTarget;
    btn.disabled = true;
    say(status, "generating another answer…");
    try {
      const again = await ask(messages, { retry_of: card.dataset.id });
      const next = answerCard(again, messages, container, letter);
      ranker(container);
      say(status, "regenerated: rank the answers below, if you like");
      next.focus();
    } catch (err) { say(status, humanError(err), true); }
    finally { btn.disabled = false; }
  });
  card._act = { ...cardChoices(card, ans, status), ...cardForms(card, ans, send, status) };
  container.appendChild(card);
  return card;
}

// Good / bad, 1-5 and correct / wrong: each a choice that shows what is stored (see `choose`).
function cardChoices(card, ans, status) {
  const about = { interaction_id: ans.id };
  const thumbs = [$(".thumb-up", card), $(".thumb-down", card)];
  const thumb = makeChoice(() => pressed(thumbs, (b) => (b === thumbs[0] ? "up" : "down") === thumb.value));
  thumbs[0].addEventListener("click", () => choose(thumb, "up", { ...about, kind: "thumbs", up: true }, status, "good"));
  thumbs[1].addEventListener("click", () => choose(thumb, "down", { ...about, kind: "thumbs", up: false }, status, "bad"));
  const rates = $$(".rate", card);
  const rating = makeChoice(() => pressed(rates, (b) => Number(b.dataset.score) === rating.value));
  for (const b of rates) {
    const score = Number(b.dataset.score);
    b.addEventListener("click", () => choose(rating, score, { ...about, kind: "rating", score, scale: [1, 5] },
                                             status, "rating " + score + " of 5"));
  }
  const checks = [$(".verify-pass", card), $(".verify-fail", card)];
  const outcome = makeChoice(() => pressed(checks, (b) => outcome.value !== null && (b === checks[0]) === (outcome.value === "pass")));
  const verdict = (passed) => ({ ...about, kind: "outcome", passed, verifier: "reviewer" });
  checks[0].addEventListener("click", () => choose(outcome, "pass", verdict(true), status, "“correct”"));
  checks[1].addEventListener("click", () => choose(outcome, "fail", verdict(false), status, "“wrong”"));
  for (const f of ans.mine || []) {  // what this annotator said before: shown pressed, so a click changes it
    const scale = (f.scale || []).join(",");
    const slot = f.kind === "outcome" ? outcome : scale === "0,1" ? thumb : scale === "1,5" ? rating : null;
    if (!slot) continue;
    slot.id = f.id;
    slot.value = f.kind === "outcome" ? f.label : scale === "0,1" ? (f.score ? "up" : "down") : f.score;
    slot.onChange(slot);
  }
  return { rate: (n) => rates[n - 1].click(), good: () => thumbs[0].click(), bad: () => thumbs[1].click() };
}

// Critique, edit and tag-a-passage: collapsed forms that open on demand and close once stored.
function cardForms(card, ans, send, status) {
  const [critique, edit, span] = ["critique", "edit", "span"].map((c) => $("form." + c, card));
  $(".show-critique", card).addEventListener("click", () => toggleForm(critique));
  $(".show-edit", card).addEventListener("click", () => {
    if (edit.hidden) $("textarea", edit).value = ans.text;
    toggleForm(edit);
  });
  $(".show-span", card).addEventListener("click", () => {
    if (span.hidden) fillSelection($(".text", card), span);
    toggleForm(span);
  });
  for (const f of [critique, edit, span]) $(".cancel", f).addEventListener("click", () => closeForm(f));
  critique.addEventListener("submit", (e) => {
    e.preventDefault();
    send({ kind: "critique", text: $("textarea", critique).value }, "critique saved", critique);
  });
  edit.addEventListener("submit", (e) => {
    e.preventDefault();
    send({ kind: "edit", text: $("textarea", edit).value }, "edit saved as a new version (the original is kept)", edit);
  });
  span.addEventListener("submit", (e) => {
    e.preventDefault();
    const at = spanOffsets(ans.text, span);
    if (!at) { say(status, "That passage is not in the answer: select it in the text, or type it exactly.", true); return; }
    send({ kind: "span", start: at[0], end: at[1], category: $(".category", span).value,
           severity: Number($(".severity", span).value), comment: $(".comment", span).value || null },
         "tag saved", span);
  });
  return {
    critique: () => toggleForm(critique, true),
    edit: () => { if (edit.hidden) $(".show-edit", card).click(); },
    span: () => { if (span.hidden) $(".show-span", card).click(); },
  };
}

// The selection in the answer, if any, pre-fills the passage with its exact offsets.
function fillSelection(text, form) {
  const sel = window.getSelection();
  form.dataset.start = "";
  if (!sel.rangeCount || sel.isCollapsed || !text.contains(sel.anchorNode) || !text.contains(sel.focusNode)) return;
  const range = sel.getRangeAt(0);
  const pre = document.createRange();
  pre.selectNodeContents(text);
  pre.setEnd(range.startContainer, range.startOffset);
  const quote = range.toString();
  form.dataset.start = String(pre.toString().length);  // UTF-16 units, as the browser counts
  $(".quote", form).value = quote;
  form.dataset.quote = quote;
}

// [start, end) in Unicode code points (what the store counts), or null when the passage is not there.
function spanOffsets(full, form) {
  const quote = $(".quote", form).value;
  if (!quote) return null;
  let start16 = form.dataset.start !== "" && form.dataset.quote === quote ? Number(form.dataset.start) : full.indexOf(quote);
  if (start16 < 0 || full.slice(start16, start16 + quote.length) !== quote) start16 = full.indexOf(quote);
  if (start16 < 0) return null;
  const start = codePoints(full.slice(0, start16));
  return [start, start + codePoints(quote)];
}

function toggleForm(form, open) {
  if (form.hidden || open) openForm(form); else closeForm(form);
}

function formButton(form) {
  const card = form.closest(".answer");
  const cls = form.classList.contains("critique") ? ".show-critique" : form.classList.contains("edit") ? ".show-edit" : ".show-span";
  return $(cls, card);
}

function openForm(form) {
  form.hidden = false;
  formButton(form).setAttribute("aria-expanded", "true");
  const first = $("textarea, input", form);
  if (first) first.focus();
}

function closeForm(form) {
  form.hidden = true;
  const btn = formButton(form);
  btn.setAttribute("aria-expanded", "false");
  if (form.contains(document.activeElement)) btn.focus();
}

// Once a turn has several answers ("try again"), they can be ranked: 1 is best, equal numbers tie.
// Every answer starts unranked, so nothing is stored until a person ranks at least two of them.
function ranker(row) {
  const cards = $$(":scope > .answer", row);
  cards.forEach((card, i) => {  // number the answers, so "rank 1" and "answer 1" can be told apart
    const side = $(".side", card);
    side.hidden = false;
    side.dataset.letter = String(i + 1);
    side.textContent = "Answer " + (i + 1);
    card.setAttribute("aria-label", "Answer " + (i + 1));
  });
  for (const card of cards) {
    let sel = $(".rank", card);
    if (!sel) {
      const label = el("label", "rank-label", "Rank among these answers ");
      sel = el("select", "rank");
      label.appendChild(sel);
      card.insertBefore(label, $(".text", card));
    }
    const keep = sel.value;
    sel.textContent = "";
    sel.appendChild(new Option("unranked", ""));
    for (let r = 1; r <= cards.length; r++) sel.appendChild(new Option(String(r) + (r === 1 ? " (best)" : ""), String(r)));
    sel.value = keep;
  }
  let bar = row.nextElementSibling;
  if (bar && bar.classList.contains("ranking")) return;
  bar = el("div", "ranking");
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Ranking of these answers");
  const save = el("button", "save-ranking", "Save ranking");
  save.type = "button";
  const status = el("span", "status");
  status.setAttribute("role", "status");
  const saved = { id: null, signature: null, ids: null };
  save.addEventListener("click", async () => {
    const groups = new Map();
    for (const card of $$(":scope > .answer", row)) {
      const r = $(".rank", card).value;
      if (r) groups.set(Number(r), [...(groups.get(Number(r)) || []), card.dataset.id]);
    }
    if (groups.size < 2) { say(status, "Rank at least two answers differently first (1 = best; equal numbers tie).", true); return; }
    const ranking = [...groups.keys()].sort((x, y) => x - y).map((r) => (groups.get(r).length === 1 ? groups.get(r)[0] : groups.get(r)));
    const signature = JSON.stringify(ranking);
    if (signature === saved.signature) { say(status, "This ranking is already saved."); return; }
    const ids = ranking.flat().sort().join(",");
    say(status, "saving…");
    try {
      let r;
      if (saved.id && saved.ids === ids) {
        r = await api("/v1/feedback/" + saved.id + "/supersede", withKey({ kind: "ranking", ranking }));
      } else {
        if (saved.id) await api("/v1/feedback/" + saved.id + "/retract", {});
        r = await feedback({ kind: "ranking", ranking });
      }
      Object.assign(saved, { id: r.id, signature, ids });
      say(status, "ranking saved");
      changed(status);
    } catch (err) { say(status, humanError(err), true); }
  });
  bar.append(save, status);
  row.after(bar);
}

// --- principles ---------------------------------------------------------------------------------
$("#principle-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await feedback({ kind: "principle", text: $("#principle-text").value,
                     applies_when: $("#principle-when").value || null, not_when: $("#principle-not").value || null });
    say($("#principle-status"), "principle saved");
    e.target.reset();
  } catch (err) { say($("#principle-status"), humanError(err), true); }
});

function describeFeedback(f) {
  const what = f.text || f.label || (f.score != null ? "score " + f.score : "");
  const scope = f.payload && (f.payload.applies_when || f.payload.not_when)
    ? " (applies when: " + (f.payload.applies_when || "—") + "; not when: " + (f.payload.not_when || "—") + ")" : "";
  return f.kind + ": " + what + scope + (f.author ? " — proposed by " + f.author : "");
}

async function loadProposed() {
  const ul = $("#proposed");
  const status = $("#proposed-status");
  try {
    const rows = await api("/v1/proposed");
    ul.textContent = "";
    if (!rows.length) ul.appendChild(el("li", "meta", "nothing proposed"));
    for (const f of rows) {
      const li = el("li", "proposal");
      li.dataset.id = f.id;
      li.appendChild(el("span", "what", describeFeedback(f)));
      for (const [cls, text, decision] of [["accept", "Accept", "accept"], ["reject", "Reject", "reject"]]) {
        const b = el("button", cls, text);
        b.type = "button";
        b.setAttribute("aria-label", text + ": " + describeFeedback(f));
        b.addEventListener("click", async () => {
          try {
            await api("/v1/feedback/" + f.id + "/" + decision, {});
            say(status, (decision === "accept" ? "accepted: " : "rejected: ") + (f.text || f.label || f.kind));
            li.remove();
            if (!$("li", ul)) ul.appendChild(el("li", "meta", "nothing proposed"));
          } catch (err) { say(status, humanError(err), true); }
        });
        li.appendChild(b);
      }
      ul.appendChild(li);
    }
  } catch (err) { say(status, humanError(err), true); }
}
onTab.principles = loadProposed;

// --- export -------------------------------------------------------------------------------------
for (const b of $$(".export")) b.addEventListener("click", async () => {
  const headers = {};
  const key = keyInput.value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  try {
    const res = await fetch(b.dataset.path, { headers });
    if (!res.ok) {
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      throw new ApiError(res.status, data);
    }
    const blob = await res.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = b.dataset.path.split("/").pop() + ".jsonl";
    a.click();
    say($("#export-status"), "downloaded " + blob.size + " bytes");
  } catch (err) { say($("#export-status"), humanError(err), true); }
});

// --- annotators (for the queue, assignments and agreement) ----------------------------------------
async function refreshAnnotators() {
  try {
    const list = await api("/v1/annotators");
    const dl = $("#annotator-list");
    dl.textContent = "";
    for (const a of list) dl.appendChild(new Option(a.name, a.name));
    return list;
  } catch (err) { return []; }
}

// --- keyboard -----------------------------------------------------------------------------------
function typing(t) {
  return t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
}

function currentCard() {
  const a = document.activeElement;
  const c = a && a.closest ? a.closest(".answer") : null;
  if (c && !c.closest("[hidden]")) return c;
  if (currentTab() === "review") return $("#queue .answer");
  const all = $$("#conversation .answer");
  return all.length ? all[all.length - 1] : null;
}

function currentCompare() {
  const a = document.activeElement;
  const t = a && a.closest ? a.closest(".turn.compare") : null;
  if (t) return t;
  const all = $$("#conversation .turn.compare");
  return all.length ? all[all.length - 1] : null;
}

function moveAnswer(step) {
  const all = $$("#conversation .answer");
  if (!all.length) return;
  const at = all.indexOf(currentCard());
  const next = all[Math.max(0, Math.min(all.length - 1, (at < 0 ? all.length : at) + step))];
  next.focus();
}

function openHelp(open) {
  const help = $("#help");
  help.hidden = !open;
  if (open) $("#help-close").focus(); else $("#help-btn").focus();
}
$("#help-btn").addEventListener("click", () => openHelp(true));
$("#help-close").addEventListener("click", () => openHelp(false));

const moves = {};  // per tab: j / k handlers (review.js adds the queue's)

document.addEventListener("keydown", (e) => {
  if (e.target.classList && e.target.classList.contains("tab") && (e.key === "ArrowRight" || e.key === "ArrowLeft")) {
    const tabs = $$(".tab");  // a tab list moves with the arrow keys
    const next = tabs[(tabs.indexOf(e.target) + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    showTab(next.dataset.tab);
    e.preventDefault();
    return;
  }
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    const form = e.target.closest && e.target.closest("form");
    if (form) { e.preventDefault(); form.requestSubmit(); }
    return;
  }
  if (e.key === "Escape") {
    if (!$("#help").hidden) { openHelp(false); return; }
    const form = e.target.closest && e.target.closest(".answer form");
    const card = currentCard();
    const open = form ? [form] : card ? $$("form:not([hidden])", card) : [];
    open.forEach(closeForm);
    if (!form && typing(e.target)) e.target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  const card = currentCard();
  const act = card && card._act;
  const k = e.key;
  let done = true;
  if (k >= "1" && k <= "5" && act) act.rate(Number(k));
  else if (k === "+" && act) act.good();
  else if (k === "-" && act) act.bad();
  else if (k === "c" && act) act.critique();
  else if (k === "e" && act) act.edit();
  else if (k === "s" && act) act.span();
  else if (["a", "b", "t", "x"].includes(k) && currentTab() === "chat" && currentCompare()) {
    currentCompare()._pick({ a: "a", b: "b", t: "tie", x: "both_bad" }[k]);
  } else if ((k === "j" || k === "k") && moves[currentTab()]) moves[currentTab()](k === "j" ? 1 : -1);
  else if (k === "j" || k === "k") moveAnswer(k === "j" ? 1 : -1);
  else if (k === "?") openHelp(true);
  else done = false;
  if (done) e.preventDefault();
});
