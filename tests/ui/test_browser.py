"""End to end in a real headless Chromium: chat, give every kind of feedback through the page, and find
each one in the store. User text is shown as text, never run as HTML."""

from __future__ import annotations

import pytest

from refeed.store import Store
from tests.api.conftest import free_port, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
XSS = '<img src=x onerror="window.__xss=1"> what is 2+2?'
EMOJI = "😀🎉 héllo wörld <script>window.__xss=2</script>"


@pytest.fixture
def page(browser, tmp_path, tiny_model_dir):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    port = free_port()
    proc = start_server(tiny_model_dir, url, port, "--local")
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/")
    page.store_url = url
    yield page
    page.close()
    proc.terminate()
    proc.wait(timeout=20)


def _status(card):
    return card.locator(".status")


def test_every_kind_of_feedback_through_the_page(page):
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # the machine may be busy with other tests
    # Browser selections count UTF-16 units; the store counts code points. An answer with emoji before
    # the selection tells the two apart (each emoji is 2 UTF-16 units, 1 code point). Logged first, so
    # it heads the review queue (oldest first) however many answers the chat below produces.
    store = Store(page.store_url)
    emoji_id = store.log([{"role": "user", "content": "greet me"}], EMOJI)
    second_id = store.log([{"role": "user", "content": "and again"}], "hello again")
    page.fill("#prompt", XSS)
    page.click("#send")
    card = page.locator(".answer").first
    expect(card).to_be_visible(timeout=30_000)
    assert page.locator(".user-msg").first.text_content() == XSS  # shown as text
    assert page.evaluate("window.__xss") is None  # and never run

    card.locator(".thumb-up").click()
    expect(_status(card)).to_have_text("👍 saved")
    card.locator(".rating").select_option("4")
    expect(_status(card)).to_have_text("rating saved")
    card.locator(".show-critique").click()
    card.locator("form.critique textarea").fill("Too vague <b>really</b>")
    card.locator("form.critique button").click()
    expect(_status(card)).to_have_text("critique saved")
    card.locator(".copy").click()
    expect(_status(card)).to_have_text("copy logged")
    card.locator(".verify-fail").click()
    expect(_status(card)).to_have_text("outcome saved")
    card.locator(".show-edit").click()
    card.locator("form.edit textarea").fill("4")
    card.locator("form.edit button").click()
    expect(_status(card)).to_have_text("edit saved")

    # The untrained tiny model may stop early: try again until some answer has 4+ characters to tag.
    for _ in range(8):
        if len(card.locator(".text").text_content()) >= 4:
            break
        n = page.locator(".answer").count()
        card.locator(".retry").click()
        expect(page.locator(".answer")).to_have_count(n + 1, timeout=30_000)
        card = page.locator(".answer").last
    answer = card.locator(".text").text_content()
    assert len(answer) >= 4, answer
    # Select characters 1..4 of the answer with the mouse-equivalent DOM selection, then tag them.
    card.locator(".text").evaluate("""el => { const r = document.createRange(); const t = el.firstChild;
        r.setStart(t, 1); r.setEnd(t, 4); const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); }""")
    card.locator(".show-span").click()
    card.locator("form.span .category").select_option("factual_error")
    card.locator("form.span .severity").select_option("3")
    card.locator("form.span button").click()
    expect(_status(card)).to_have_text("span saved")

    card.locator(".retry").click()
    expect(_status(card)).to_have_text("regenerated", timeout=30_000)
    # The first turn now holds several answers: rank them, the last two tied.
    first_turn = page.locator(".turn").first
    ranks = first_turn.locator(".answer .rank")
    while (k := ranks.count()) < 3:  # three answers, so a tie of two still leaves an order
        first_turn.locator(".answer .retry").first.click()
        expect(ranks).to_have_count(k + 1, timeout=30_000)
    ranks.nth(k - 1).select_option(str(k - 1))
    first_turn.locator(".save-ranking").click()
    expect(first_turn.locator(".ranking .status")).to_have_text("ranking saved")

    page.check("#compare")
    page.fill("#prompt", "and 3+3?")
    page.click("#send")
    page.locator(".pick-a").last.click()
    expect(page.locator(".pick .status").last).to_have_text("preference saved", timeout=30_000)

    page.click("button[data-tab=principles]")
    page.fill("#principle-text", "Answer with the number only.")
    page.fill("#principle-when", "arithmetic questions")
    page.click("#principle-form button")
    expect(page.locator("#principle-status")).to_have_text("principle saved")

    page.click("button[data-tab=review]")
    page.click("#load-queue")
    queued = page.locator("#queue .answer").first
    expect(queued).to_be_visible()
    queued.locator(".thumb-down").click()
    expect(_status(queued)).to_have_text("👎 saved")
    emoji_card = page.locator(f"#queue .answer[data-id='{emoji_id}']")
    units = EMOJI.encode("utf-16-le")
    start16 = len(EMOJI[: EMOJI.index("wörld")].encode("utf-16-le")) // 2
    emoji_card.locator(".text").evaluate(
        """(el, [a, b]) => { const r = document.createRange(); r.setStart(el.firstChild, a);
        r.setEnd(el.firstChild, b); const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); }""",
        [start16, start16 + 5],
    )
    assert len(units) // 2 > len(EMOJI)  # the offsets really differ
    emoji_card.locator(".show-span").click()
    emoji_card.locator("form.span button").click()
    expect(_status(emoji_card)).to_have_text("span saved")
    expect(page.locator("#queue-status")).to_contain_text("1 / ")
    page.click("#queue-next")  # the queue walks on: the next unlabelled answer replaces this one
    expect(page.locator("#queue-status")).to_contain_text("2 / ")
    expect(page.locator("#queue .answer")).to_have_count(1)
    assert page.locator("#queue .answer").get_attribute("data-id") == second_id

    page.click("button[data-tab=export]")
    with page.expect_download() as dl:
        page.click("button.export[data-path='/v1/export']")
    exported = dl.value.path().read_text()

    kinds = [str(f.kind) for f in store.iter_feedback()]
    every = (
        "rating",
        "preference",
        "ranking",
        "critique",
        "edit",
        "span",
        "retry",
        "followup",
        "principle",
        "signal",
        "outcome",
    )
    assert sorted(set(kinds)) == sorted(every), kinds
    assert kinds.count("rating") == 3  # thumbs up, 1-5 rating, thumbs down in the review queue
    assert kinds.count("preference") == 1 and kinds.count("principle") == 1 and kinds.count("ranking") == 1
    span, emoji_span = sorted(store.iter_feedback(kinds=["span"]), key=lambda f: f.interaction_id == emoji_id)
    assert span.payload["spans"][0]["quote"] == answer[1:4] and span.payload["spans"][0]["severity"] == 3
    got = emoji_span.payload["spans"][0]
    assert (got["start"], got["end"], got["quote"]) == (
        EMOJI.index("wörld"),
        EMOJI.index("wörld") + 5,
        "wörld",
    )
    (ranking,) = store.iter_feedback(kinds=["ranking"])
    positions = sorted(t["position"] for t in ranking.targets)
    assert positions[-1] == positions[-2]  # the tie
    (followup,) = store.iter_feedback(kinds=["followup"])
    assert followup.text == "and 3+3?"
    (signal,) = store.iter_feedback(kinds=["signal"])
    assert signal.label == "copy"
    (outcome,) = store.iter_feedback(kinds=["outcome"])
    assert outcome.label == "fail"
    (critique,) = store.iter_feedback(kinds=["critique"])
    assert critique.text == "Too vague <b>really</b>"
    first = store.get_interaction(span.interaction_id)
    assert first.messages == [{"role": "user", "content": XSS}]
    assert first.id in exported
    assert page.evaluate("window.__xss") is None  # no <script> in any shown text ever ran
