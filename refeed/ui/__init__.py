"""The web UI: one page of plain HTML, CSS and JavaScript served by the API app (no node build).

Chat with the model; thumbs, 1–5 ratings, try again, compare two answers, critique, select a span and
tag it, edit an answer, write a principle, walk the review queue, export. All user text is inserted
with ``textContent``, never as HTML.
"""
