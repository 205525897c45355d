"""End to end in a real headless Chromium: chat, give every kind of feedback through the page, and find
each one in the store. User text is shown as text, never run as HTML."""

from __future__ import annotations

import pytest

from refeed.store import Store
from tests.api.conftest import free_port, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
XSS = '<img src=x onerror="window.__xss=1"> what is 2+2?'


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

    page.click("button[data-tab=export]")
    with page.expect_download() as dl:
        page.click("button.export[data-path='/v1/export']")
    exported = dl.value.path().read_text()

    store = Store(page.store_url)
    kinds = [str(f.kind) for f in store.iter_feedback()]
    for kind in ("rating", "critique", "edit", "span", "retry", "preference", "principle"):
        assert kind in kinds, (kind, kinds)
    assert kinds.count("rating") == 3  # thumbs up, 1-5 rating, thumbs down in the review queue
    assert kinds.count("preference") == 1 and kinds.count("principle") == 1
    (span,) = store.iter_feedback(kinds=["span"])
    assert span.payload["spans"][0]["quote"] == answer[1:4] and span.payload["spans"][0]["severity"] == 3
    (critique,) = store.iter_feedback(kinds=["critique"])
    assert critique.text == "Too vague <b>really</b>"
    first = store.get_interaction(span.interaction_id)
    assert first.messages == [{"role": "user", "content": XSS}]
    assert first.id in exported
