"""The ``callcycle`` command line: a thin shell over ``pipeline`` (and the Prefect flows).

One module per command group — :mod:`cli.scoring` (run, summary, report), :mod:`cli.models`
(classify, train, evaluate, compare, evaluate-calls), :mod:`cli.labelling` (export-uncertain,
import-labels). Each command parses its options, calls one function and prints the result;
:func:`cli.common.command` maps every callcycle error to a message and exit status 2.
Heavy imports happen inside commands so ``--help`` is instant.
"""

from __future__ import annotations

from cli import labelling, models, scoring  # noqa: F401  (registers the commands)

# isort: skip_file  (import order is the order of commands in --help)
from cli.common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    app()
