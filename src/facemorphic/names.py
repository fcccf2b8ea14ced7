"""Names that reach paths and shell lines: user ids and experiment names.

One pattern for both: ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit (so
``.`` and ``..`` are never names). A user folder outside it is recorded in ``rejects.csv`` and never run;
an experiment name outside it stops the workflow at parse time. Every value that reaches a shell line is
also quoted, so the pattern is a second guard, and it keeps Snakemake's wildcards unambiguous.
"""

from __future__ import annotations

import re

SAFE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def is_safe_name(name: str) -> bool:
    return re.fullmatch(SAFE_NAME_PATTERN, name) is not None


def unsafe_name_reason(name: str) -> str:
    return (f"name {name!r} is not of the form {SAFE_NAME_PATTERN} (ASCII letters, digits, '.', '_', '-'), so it "
            "is not processed; rename the folder")
