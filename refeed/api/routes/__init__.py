"""One router per concern: chat (OpenAI-compatible), feedback, data (interactions, review, export), ui."""
