"""Logging set-up and progress bars with a rate (images/s, fits done)."""

from __future__ import annotations

import contextlib
import logging
import sys


def setup_logging(verbosity=0):
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)


@contextlib.contextmanager
def progress_bar(total, desc, unit, enabled=True):
    """Yield a callable advancing a tqdm bar by n; a no-op when disabled."""
    if not enabled:
        yield lambda n=1: None
        return
    from tqdm import tqdm  # noqa: PLC0415

    with tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr,
              mininterval=0.5) as bar:
        yield bar.update
