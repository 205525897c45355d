"""Training: the update step (``step.py``), the offline loop (``loop.py``), the online loop (``online.py``).

Encoding, collation and log-probs live one layer down, in ``refeed.batch``."""
