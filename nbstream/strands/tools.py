"""A ready-made tool for examples: ``calculator``, a real Strands ``@tool``.

It evaluates plain arithmetic with :func:`nbstream.handlers.calculate` (numbers,
``+ - * / // % **`` and brackets; nothing else runs), so a notebook can give an agent
a tool without writing one first.
"""

from __future__ import annotations

from strands import tool

from nbstream.handlers import calculate


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 6*7 or (2+3)**2.

    Args:
        expression: Numbers with + - * / // % ** and brackets.
    """
    return str(calculate(expression))
