"""Every annotation flow in a real headless Chromium against a real ``refeed serve`` (tiny model, admin key).

One server and one browser for the module; each test gets a fresh browser context (its own
localStorage) and checks the rows the store holds afterwards, not only what the page says. Screenshots
go to ``$REFEED_UI_SCREENSHOTS`` if set, else to a ``screenshots`` folder under pytest's temp dir
(printed at the end of the module).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from refeed.store import Store
from refeed.store import annotation as ann

pytestmark = [pytest.mark.browser, pytest.mark.slow]
XSS = '<img src=x onerror="window.__xss=1"> what is 2+2?'
EMOJI = "😀🎉 héllo wörld <script>window.__xss=2</script>"
Q = [{"role": "user", "content": "what is 2+2?"}]


@pytest.fixture(scope="module")
def srv(model_server, tmp_path_factory):
    """The suite's tiny-model server (shared with tests/api: one model load for both), used through its
    admin key, as a deployment would; every test names its own annotators and models."""
    shots = Path(os.environ.get("REFEED_UI_SCREENSHOTS") or tmp_path_factory.mktemp("ui") / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    store = Store(model_server.store_url)
    yield type(
        "Srv", (), {"base": model_server.base, "store": store, "shots": shots, "key": model_server.admin}
    )
    store.close()
    print(f"\nscreenshots: {shots}")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:4]}"


@pytest.fixture
def page(browser, srv, request):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # the machine may be busy with other tests
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    context.add_init_script(f"localStorage.setItem('refeed-key', {srv.key!r})")
    page.goto(srv.base + "/")
    page.shot = lambda name: page.screenshot(
        path=srv.shots / f"{request.node.name}-{name}.png", full_page=True
    )
    yield page
    context.close()
    assert errors == [], errors  # no JavaScript error in any flow


# Every shown control with no name a screen reader could read (aria-label, a <label>, a button's text).
UNNAMED = """() => { const shown = Array.from(document.querySelectorAll("button, input, select, textarea"))
  .filter((e) => e.offsetParent !== null);
  const named = (e) => (e.getAttribute("aria-label") || "").trim()
    || (e.labels && e.labels.length && e.labels[0].textContent.trim()) || (e.tagName === "BUTTON" && e.textContent.trim());
  return [shown.length, shown.filter((e) => !named(e)).map((e) => e.outerHTML.slice(0, 80))]; }"""


def _rows(srv, *ids):
    return ann.history(srv.store, ids)


def _chat(page, text: str, compare: bool = False):
    from playwright.sync_api import expect

    n = page.locator("#conversation .turn").count()
    page.set_checked("#compare", compare)
    page.fill("#prompt", text)
    page.click("#send")
    turn = page.locator("#conversation .turn").nth(n)
    expect(turn.locator(".answer")).to_have_count(2 if compare else 1, timeout=60_000)
    return turn


def test_forms_collapsed_and_every_kind_stored_with_its_author(page, srv):
    from playwright.sync_api import expect

    ana = _name("ana")
    page.fill("#annotator", ana)
    turn = _chat(page, XSS)
    card = turn.locator(".answer").first
    iid = card.get_attribute("data-id")
    assert page.locator(".user-msg").first.text_content() == XSS and page.evaluate("window.__xss") is None
    for form in ("critique", "edit", "span"):  # collapsed until asked for
        expect(card.locator(f"form.{form}")).to_be_hidden()
    page.shot("collapsed")
    card.locator(".show-critique").click()
    expect(card.locator("form.critique")).to_be_visible()
    expect(card.locator(".show-critique")).to_have_attribute("aria-expanded", "true")
    card.locator("form.critique textarea").fill("Too vague <b>really</b>")
    page.shot("critique-open")
    card.locator("form.critique button[type=submit]").click()
    expect(card.locator(".status")).to_have_text("critique saved")
    expect(card.locator("form.critique")).to_be_hidden()  # closes once stored
    card.locator(".copy").click()
    expect(card.locator(".status")).to_contain_text("copied")
    card.locator(".verify-fail").click()
    expect(card.locator(".verify-fail")).to_have_attribute("aria-pressed", "true")
    card.locator(".show-edit").click()
    card.locator("form.edit textarea").fill("4")
    card.locator("form.edit button[type=submit]").click()
    expect(card.locator(".status")).to_contain_text("edit saved")
    # A passage typed into the tag form (the keyboard way); a selection fills the same field.
    answer = card.locator(".text").text_content()
    card.locator(".show-span").click()
    card.locator("form.span .quote").fill(answer[:1] or "x")
    card.locator("form.span .severity").select_option("3")
    card.locator("form.span button[type=submit]").click()
    if answer:
        expect(card.locator(".status")).to_have_text("tag saved")
    page.shot("after")
    rows = {r["kind"]: r for r in _rows(srv, iid)}
    assert rows["critique"]["text"] == "Too vague <b>really</b>" and rows["critique"]["author"] == ana
    assert (
        rows["outcome"]["label"] == "fail"
        and rows["edit"]["text"] == "4"
        and rows["signal"]["label"] == "copy"
    )
    assert {r["author"] for r in rows.values() if r["source"] == "human"} == {ana}
    if answer:
        (span,) = srv.store.iter_feedback(kinds=["span"], author=ana)
        assert span.payload["spans"][0]["quote"] == answer[0] and span.payload["spans"][0]["severity"] == 3
    page.reload()  # the name is remembered
    assert page.input_value("#annotator") == ana


def test_thumbs_and_ratings_show_state_retract_and_supersede(page, srv):
    from playwright.sync_api import expect

    ben = _name("ben")
    page.fill("#annotator", ben)
    card = _chat(page, "hello").locator(".answer").first
    iid = card.get_attribute("data-id")
    up, down = card.locator(".thumb-up"), card.locator(".thumb-down")
    up.click()
    expect(up).to_have_attribute("aria-pressed", "true")
    down.click()
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    page.shot("down")
    (first, second) = [r for r in _rows(srv, iid) if r["kind"] == "rating"]
    assert (first["score"], first["status"]) == (1, "superseded")
    assert (second["score"], second["status"], second["supersedes_id"]) == (0, "active", first["id"])
    down.click()  # again: withdrawn
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(card.locator(".status")).to_contain_text("removed")
    card.locator(".rate[data-score='3']").click()
    expect(card.locator(".rate[data-score='3']")).to_have_attribute("aria-pressed", "true")
    card.locator(".rate[data-score='5']").click()
    expect(card.locator(".rate[data-score='5']")).to_have_attribute("aria-pressed", "true")
    expect(card.locator(".rate[aria-pressed='true']")).to_have_count(1)
    page.shot("rated")
    rows = [r for r in _rows(srv, iid) if r["kind"] == "rating"]
    assert [(r["score"], r["status"]) for r in rows] == [
        (1, "superseded"),
        (0, "retracted"),
        (3, "superseded"),
        (5, "active"),
    ]
    assert {r["author"] for r in rows} == {ben}
    assert [f.score for f in srv.store.iter_feedback(kinds=["rating"], author=ben)] == [
        5
    ]  # what builders see


def test_try_again_ranking_starts_unranked(page, srv):
    from playwright.sync_api import expect

    turn = _chat(page, "name a colour")
    for k in (2, 3):
        turn.locator(".answer .retry").first.click()
        expect(turn.locator(".answer")).to_have_count(k, timeout=60_000)
    ids = [turn.locator(".answer").nth(i).get_attribute("data-id") for i in range(3)]
    ranks = turn.locator(".answer .rank")
    expect(ranks).to_have_count(3)
    assert [ranks.nth(i).input_value() for i in range(3)] == ["", "", ""]  # nothing pre-filled
    turn.locator(".save-ranking").click()  # saving unchanged stores nothing
    expect(turn.locator(".ranking .status")).to_contain_text("Rank at least two")
    assert not [r for r in _rows(srv, *ids) if r["kind"] == "ranking"]
    retries = [r for r in _rows(srv, *ids) if r["kind"] == "retry"]
    assert len(retries) == 2
    ranks.nth(2).select_option("1")
    ranks.nth(0).select_option("2")
    turn.locator(".save-ranking").click()
    expect(turn.locator(".ranking .status")).to_have_text("ranking saved")
    ranks.nth(1).select_option("2")  # now answers 1 and 2 tie behind 3: a change supersedes
    turn.locator(".save-ranking").click()
    expect(turn.locator(".ranking .status")).to_have_text("ranking saved")
    page.shot("ranked")
    r1, r2 = [r for r in _rows(srv, *ids) if r["kind"] == "ranking"]
    assert r1["status"] == "retracted"  # another set of answers: the old ranking is withdrawn, not merged
    pos = {t["interaction_id"]: t["position"] for t in r2["targets"]}
    assert r2["status"] == "active" and pos == {ids[2]: 1, ids[0]: 2, ids[1]: 2}


def test_side_by_side_a_b_tie_both_bad(page, srv):
    from playwright.sync_api import expect

    turn = _chat(page, "and 3+3?", compare=True)
    a, b = turn.locator(".answer").nth(0), turn.locator(".answer").nth(1)
    expect(a.locator(".side")).to_have_text("Answer A")
    expect(b.locator(".side")).to_have_text("Answer B")
    ia, ib = a.get_attribute("data-id"), b.get_attribute("data-id")
    turn.locator(".pick-a").click()
    expect(turn.locator(".pick-a")).to_have_attribute("aria-pressed", "true")
    turn.locator(".pick-tie").click()
    expect(turn.locator(".pick-tie")).to_have_attribute("aria-pressed", "true")
    turn.locator(".pick-both-bad").click()
    expect(turn.locator(".pick-both-bad")).to_have_attribute("aria-pressed", "true")
    expect(turn.locator(".pick [aria-pressed='true']")).to_have_count(1)
    page.shot("both-bad")
    prefs = [r for r in _rows(srv, ia, ib) if r["kind"] == "preference"]
    assert [(r["label"], r["status"]) for r in prefs] == [
        (None, "superseded"),
        ("tie", "superseded"),
        ("both_bad", "active"),
    ]
    chosen = {t["role"]: t["interaction_id"] for t in prefs[0]["targets"]}
    assert chosen == {"chosen": ia, "rejected": ib}
    turn.locator(".pick-b").click()
    expect(turn.locator(".pick-b")).to_have_attribute("aria-pressed", "true")
    last = [r for r in _rows(srv, ia, ib) if r["kind"] == "preference"][-1]
    assert {t["role"]: t["interaction_id"] for t in last["targets"]} == {"chosen": ib, "rejected": ia}


def test_keyboard_only(page, srv):
    """No mouse: type, Ctrl+Enter, 1-5, +, c / Ctrl+Enter / Esc, a / b, Tab to a control and press it,
    j / k through the queue."""
    from playwright.sync_api import expect

    kb = page.keyboard
    kim = _name("kim")
    page.focus("#annotator")
    kb.type(kim)
    page.focus("#prompt")
    kb.type("hi there")
    kb.press("Control+Enter")
    card = page.locator("#conversation .answer").first
    expect(card).to_be_visible(timeout=60_000)
    iid = card.get_attribute("data-id")
    expect(page.locator("#prompt")).to_be_focused()
    page.locator("body").focus()
    page.evaluate("document.activeElement.blur()")
    kb.press("4")
    expect(card.locator(".rate[data-score='4']")).to_have_attribute("aria-pressed", "true")
    kb.press("+")
    expect(card.locator(".thumb-up")).to_have_attribute("aria-pressed", "true")
    kb.press("c")
    expect(card.locator("form.critique textarea")).to_be_focused()
    kb.type("needs a greeting back")
    kb.press("Control+Enter")
    expect(card.locator(".status")).to_have_text("critique saved")
    kb.press("e")
    expect(card.locator("form.edit")).to_be_visible()
    kb.press("Escape")
    expect(card.locator("form.edit")).to_be_hidden()
    expect(card.locator(".show-edit")).to_be_focused()  # focus goes back to the control that opened it
    for _ in range(12):  # walk back through the toolbar with Shift+Tab to "Bad", and press it
        if page.evaluate("document.activeElement.classList.contains('thumb-down')"):
            break
        kb.press("Shift+Tab")
    kb.press("Enter")
    expect(card.locator(".thumb-down")).to_have_attribute("aria-pressed", "true")
    rows = {(r["kind"], r["status"]): r for r in _rows(srv, iid)}
    assert rows[("rating", "active")]["score"] == 0 and rows[("rating", "superseded")]["score"] == 1
    assert rows[("critique", "active")]["text"] == "needs a greeting back"
    assert {r["author"] for r in rows.values()} == {kim}
    # Compare by keyboard.
    page.focus("#compare")
    kb.press("Space")
    page.focus("#prompt")
    kb.type("pick one")
    kb.press("Control+Enter")
    turn = page.locator("#conversation .turn.compare")
    expect(turn.locator(".answer")).to_have_count(2, timeout=60_000)
    shown, unnamed = page.evaluate(UNNAMED)
    assert shown > 40 and unnamed == []  # every control in the chat has a name a screen reader reads
    page.evaluate("document.activeElement.blur()")
    kb.press("b")
    expect(turn.locator(".pick-b")).to_have_attribute("aria-pressed", "true")
    ib = turn.locator(".answer").nth(1).get_attribute("data-id")
    (pref,) = [r for r in _rows(srv, ib) if r["kind"] == "preference"]
    assert {t["role"]: t["interaction_id"] for t in pref["targets"]}["chosen"] == ib
    # The queue: tab to "Review queue", Enter, then j / k and a rating key.
    model = f"kb-{uuid.uuid4().hex[:6]}"
    first, second = (srv.store.log(Q, t, model=model) for t in ("four", "five"))
    page.focus("#tabbtn-chat")
    kb.press("ArrowRight")  # the tab list moves with the arrow keys
    expect(page.locator("#tab-review")).to_be_visible()
    expect(page.locator("#tabbtn-review")).to_be_focused()
    expect(page.locator(f"#model-list option[value='{model}']")).to_have_count(1)  # the tab loaded the models
    page.focus("#f-model")
    kb.type(model)
    kb.press("Escape")  # closes the suggestions (and leaves the field)
    page.focus("#load-queue")
    kb.press("Enter")
    expect(page.locator("#queue .answer")).to_have_attribute("data-id", first)
    expect(page.locator("#queue-status")).to_contain_text("0 of 2 labelled · item 1 of 2 shown")
    page.evaluate("document.activeElement.blur()")
    kb.press("j")
    expect(page.locator("#queue .answer")).to_have_attribute("data-id", second)
    kb.press("2")
    expect(page.locator("#queue-status")).to_contain_text("1 of 2 labelled")
    kb.press("k")
    expect(page.locator("#queue .answer")).to_have_attribute("data-id", first)
    shown, unnamed = page.evaluate(UNNAMED)
    assert shown > 20 and unnamed == []  # every control in the queue has a name a screen reader reads
    kb.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.shot("help")
    kb.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    got = [(r["kind"], r["score"], r["author"], r["status"]) for r in _rows(srv, second)]
    assert got == [("rating", 2, kim, "active")], (got, _rows(srv, first))


def test_errors_read_as_sentences(page, srv):
    from playwright.sync_api import expect

    card = _chat(page, "error please").locator(".answer").first
    iid = card.get_attribute("data-id")
    page.fill("#api-key", "rf_nope.wrong")
    card.locator(".thumb-up").click()
    status = card.locator(".status")
    expect(status).to_contain_text("The server refused the API key")
    expect(status).to_have_attribute("role", "alert")
    assert "{" not in status.text_content() and "422" not in status.text_content()
    expect(card.locator(".thumb-up")).to_have_attribute("aria-pressed", "false")
    page.shot("401")
    page.fill("#api-key", srv.key)
    # A body the server refuses (422): the page's own client and message for it.
    msg = page.evaluate(
        """id => api('/v1/feedback', {kind: 'rating', interaction_id: id, score: 9, scale: [1, 5]})
                 .then(() => 'stored?!', humanError)""",
        iid,
    )
    assert msg.startswith("Please check the input.") and "outside the scale" in msg and "[" not in msg, msg
    assert [r for r in _rows(srv, iid) if r["kind"] == "rating"] == []


def test_review_queue_progress_filters_and_assignments(page, srv):
    from playwright.sync_api import expect

    model = f"rq-{uuid.uuid4().hex[:6]}"
    ids = [srv.store.log(Q, t, model=model) for t in ("one", "two", "three")]
    srv.store.log(Q, "other model", model=model + "-x")
    rev, zoe = _name("rev"), _name("zoe")
    page.fill("#annotator", rev)
    page.click("#tabbtn-review")
    expect(page.locator(f"#model-list option[value='{model}']")).to_have_count(1)
    page.fill("#f-model", model)
    page.click("#load-queue")
    expect(page.locator("#queue-status")).to_have_text("0 of 3 labelled · item 1 of 3 shown")
    page.locator("#queue .answer .thumb-up").click()
    expect(page.locator("#queue-status")).to_contain_text("1 of 3 labelled")
    page.select_option("#f-labelled", "all")  # back later: my thumb shows pressed, and a click withdraws it
    page.click("#load-queue")
    expect(page.locator("#queue .answer .thumb-up")).to_have_attribute("aria-pressed", "true")
    page.locator("#queue .answer .thumb-up").click()
    expect(page.locator("#queue-status")).to_contain_text("0 of 3 labelled")
    (thumb,) = [r for r in _rows(srv, ids[0]) if r["kind"] == "rating"]
    assert (thumb["status"], thumb["author"]) == ("retracted", rev)
    # The card re-renders once the retraction is stored; click the new button, not the one being replaced.
    expect(page.locator("#queue .answer .thumb-up")).to_have_attribute("aria-pressed", "false")
    page.locator("#queue .answer .thumb-up").click()
    expect(page.locator("#queue-status")).to_contain_text("1 of 3 labelled")
    page.select_option("#f-labelled", "no")
    page.click("#load-queue")
    expect(page.locator("#queue .answer")).to_have_attribute("data-id", ids[1])
    page.click("#queue-next")
    expect(page.locator("#queue .answer")).to_have_attribute("data-id", ids[2])
    page.click("#queue-prev")
    expect(page.locator("#queue .answer")).to_have_attribute("data-id", ids[1])
    page.fill("#assign-to", zoe)
    page.click("#assign-one")
    expect(page.locator("#assign-status")).to_have_text(f"assigned 1 new item to {zoe}")
    expect(page.locator(".item-meta")).to_contain_text(f"assigned to: {zoe}")
    page.click("#assign-all")
    expect(page.locator("#assign-status")).to_have_text(f"assigned 1 new item to {zoe}")  # 2 loaded, 1 new
    page.shot("assigned")
    assert {a["name"]: a["assigned"] for a in ann.annotators(srv.store)}[zoe] == 2
    page.select_option("#f-labelled", "all")
    page.click("#load-queue")
    expect(page.locator("#queue-status")).to_contain_text("of 3 shown")  # the 3 loaded, not the 2 before
    page.click("#assign-all")
    expect(page.locator("#assign-status")).to_have_text(f"assigned 1 new item to {zoe}")
    assert {a["name"]: a["assigned"] for a in ann.annotators(srv.store)}[zoe] == 3
    page.select_option("#f-kind", "critique")  # a thumb is not a critique: all three are unlabelled again
    page.click("#load-queue")
    expect(page.locator("#queue-status")).to_contain_text("0 of 3 labelled")
    page.select_option("#f-kind", "")
    page.fill("#f-annotator", zoe)
    page.click("#load-queue")
    expect(page.locator("#queue-status")).to_contain_text(
        f"0 of 3 labelled by {zoe}"
    )  # rev's thumb isn't zoe's
    page.shot("zoe")
    from refeed.store import review

    q = review.queue(srv.store, model=model, annotator=zoe, labelled="all")
    assert [x["id"] for x in q["items"]] == ids and q["labelled"] == 0


def test_agreement_view_shows_disagreements(page, srv):
    from playwright.sync_api import expect

    a, b = _name("ag-a"), _name("ag-b")
    x = srv.store.log([{"role": "user", "content": "capital of France?"}], "Paris")
    y = srv.store.log([{"role": "user", "content": "capital of Spain?"}], "Madrid")
    srv.store.feedback(x, "rating", score=5, author=a)
    srv.store.feedback(x, "rating", score=2, author=b)
    srv.store.feedback(y, "thumbs", up=True, author=a)
    srv.store.feedback(y, "thumbs", up=True, author=b)
    page.click("#tabbtn-agreement")
    page.fill("#ag-a", a)
    page.fill("#ag-b", b)
    page.click("#agreement-form button[type=submit]")
    expect(page.locator("#agreement-summary")).to_contain_text(
        "both judged 2 items; they agree on 1 (50%). thumbs: 1 of 1; rating: 0 of 1"
    )
    row = page.locator("#agreement-table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".said-a")).to_have_text("5 of 5")
    expect(row.locator(".said-b")).to_have_text("2 of 5")
    expect(row).to_contain_text("capital of France?")
    page.shot("agreement")


def test_overview_plots_and_builder_counts(page, srv):
    from playwright.sync_api import expect

    from refeed.datasets import BUILDERS

    iid = srv.store.log(Q, "4")
    srv.store.feedback(iid, "thumbs", up=True, author=_name("ov"))
    page.click("#tabbtn-overview")
    expect(page.locator("#overview-status")).to_contain_text("updated", timeout=60_000)
    expect(page.locator("#plot-kind svg rect.bar").first).to_be_visible()
    page.shot("overview")
    shown = {
        r.locator("td").nth(0).text_content(): r.locator("td").nth(1).text_content()
        for r in page.locator("#ov-builders tbody tr").all()
    }
    assert shown == {name: str(len(build(srv.store))) for name, build in BUILDERS.items()}
    bars = page.locator("#plot-kind svg rect.bar").all()
    assert sum(int(b.get_attribute("data-n")) for b in bars) == len(list(srv.store.iter_feedback()))


def test_span_from_a_selection_counts_code_points(page, srv):
    """The browser's selection counts UTF-16 units; the store counts code points (emoji tell them apart)."""
    from playwright.sync_api import expect

    model = f"sp-{uuid.uuid4().hex[:6]}"
    iid = srv.store.log([{"role": "user", "content": "greet me"}], EMOJI, model=model)
    page.click("#tabbtn-review")
    expect(page.locator(f"#model-list option[value='{model}']")).to_have_count(1)
    page.fill("#f-model", model)
    page.click("#load-queue")
    card = page.locator(f"#queue .answer[data-id='{iid}']")
    assert card.locator(".text").text_content() == EMOJI and page.evaluate("window.__xss") is None
    start16 = len(EMOJI[: EMOJI.index("wörld")].encode("utf-16-le")) // 2
    assert start16 > EMOJI.index("wörld")  # the two counts really differ here
    card.locator(".text").evaluate(
        """(el, [a, b]) => { const r = document.createRange(); r.setStart(el.firstChild, a);
        r.setEnd(el.firstChild, b); const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); }""",
        [start16, start16 + 5],
    )
    card.locator(".show-span").click()
    expect(card.locator("form.span .quote")).to_have_value("wörld")
    card.locator("form.span .category").select_option("style")
    page.shot("span")
    card.locator("form.span button[type=submit]").click()
    expect(card.locator(".status")).to_have_text("tag saved")
    (span,) = [f for f in srv.store.iter_feedback(kinds=["span"]) if f.interaction_id == iid]
    got = span.payload["spans"][0]
    at = EMOJI.index("wörld")
    assert (got["start"], got["end"], got["quote"], got["category"]) == (at, at + 5, "wörld", "style")


def test_proposed_rows_are_accepted_or_rejected(page, srv):
    from playwright.sync_api import expect

    from refeed.types import Feedback, FeedbackKind

    tag = uuid.uuid4().hex[:6]
    keep, drop = srv.store.write_batch(
        [
            Feedback(kind=FeedbackKind.PRINCIPLE, text=f"Answer in French {tag}", status="proposed", author="rules",
                     payload={"applies_when": "the user writes French", "not_when": None, "tags": []}),
            Feedback(kind=FeedbackKind.PRINCIPLE, text=f"Never answer {tag}", status="proposed", author="rules",
                     payload={"applies_when": None, "not_when": None, "tags": []}),
        ]
    )  # fmt: skip
    page.click("#tabbtn-principles")
    expect(page.locator(f"#proposed li[data-id='{keep}']")).to_contain_text(
        "applies when: the user writes French"
    )
    page.shot("proposed")
    page.locator(f"#proposed li[data-id='{keep}'] .accept").click()
    expect(page.locator("#proposed-status")).to_contain_text("accepted")
    page.locator(f"#proposed li[data-id='{drop}'] .reject").click()
    expect(page.locator("#proposed-status")).to_contain_text("rejected")
    expect(page.locator(f"#proposed li[data-id='{keep}']")).to_have_count(0)
    assert (
        srv.store.get_feedback(keep).status == "active" and srv.store.get_feedback(drop).status == "retracted"
    )
