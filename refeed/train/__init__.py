"""Training: the offline loop (``loop.py``), log-probs, batching. The online loop lands in ``online.py``."""
