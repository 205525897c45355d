"""Keep third-party progress bars (transformers' "Loading weights", datasets' "Creating parquet", ...)
from interleaving with refeed's own rich bars: switch them off through their libraries' APIs for a while."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Disable transformers' and datasets' tqdm bars inside the block, and restore what was set before."""
    restore = []
    try:
        from transformers.utils import logging as tlog

        if tlog.is_progress_bar_enabled():
            tlog.disable_progress_bar()
            restore.append(tlog.enable_progress_bar)
    except ImportError:  # the torch-free install has no transformers
        pass
    try:
        import datasets

        if datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            restore.append(datasets.enable_progress_bars)
    except ImportError:
        pass
    try:
        yield
    finally:
        for fn in restore:
            fn()
