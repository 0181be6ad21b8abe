"""The library's error for input the user must fix.

:class:`BadInput` (a ``ValueError``) names the file, option or config key and what to do; the
command line (:mod:`fdopa.cli.errors`) turns it, like any ``ValueError`` or ``OSError``, into one
line on stderr and exit status 2. This module imports nothing.
"""

from __future__ import annotations

__all__ = ["BadInput"]


class BadInput(ValueError):
    """Input the user must fix (a file, option or config key); exit status 2."""
