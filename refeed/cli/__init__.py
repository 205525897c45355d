"""The ``refeed`` command line: a thin layer over the library.

Each sub-module adds its commands to ``main``; each command parses, calls one library function,
and prints. Nothing imports ``refeed.cli``.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="refeed")
def main() -> None:
    """refeed: turn feedback on a language model's outputs into a better model."""


# Sub-command modules register themselves on ``main``; keep this list literal and sorted.
from refeed.cli import demo as _demo  # noqa: E402,F401
from refeed.cli import eval as _eval  # noqa: E402,F401
from refeed.cli import serve as _serve  # noqa: E402,F401
from refeed.cli import store as _store  # noqa: E402,F401
from refeed.cli import train as _train  # noqa: E402,F401
