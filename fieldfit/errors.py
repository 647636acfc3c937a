"""User-facing errors: reported as one line and exit code 2 by the CLI."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input, option or file; the message names the culprit and the problem."""
