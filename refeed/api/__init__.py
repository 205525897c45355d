"""The HTTP API: an OpenAI-compatible chat endpoint that logs every answer, a feedback API for every
kind, projects and keys, and the web UI (``refeed.ui``), all served by one FastAPI app.

Stateless over the store, so several server processes can sit behind a load balancer. Imports no
training code; a local model is loaded (torch) only when ``refeed serve --model`` asks for one.
"""

from refeed.api.app import create_app
from refeed.api.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
