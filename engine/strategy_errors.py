"""One line for an exception a strategy raised: which strategy, what, and where in its file.

    strategy my_breakout raised ZeroDivisionError at my_breakout.py:42: float division by zero

The place is the innermost frame of the traceback inside the strategy's own source file (where
the trader can fix it); when the error came from elsewhere (an indicator function of another
module), the innermost frame of the traceback is named instead.
"""

from __future__ import annotations

import inspect
import traceback
from pathlib import Path

from engine.strategy import Strategy


def strategy_file(strategy: Strategy | type[Strategy]) -> str | None:
    """The source file of a strategy's class, or None when it has none (built in a test)."""
    cls = strategy if isinstance(strategy, type) else type(strategy)
    try:
        return inspect.getsourcefile(cls)
    except TypeError:
        return None


def where(exc: BaseException, strategy: Strategy | type[Strategy]) -> str:
    """``file.py:42`` of the frame that raised, preferring the strategy's own file."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    source = strategy_file(strategy)
    mine = [f for f in frames if source is not None and Path(f.filename) == Path(source)]
    frame = (mine or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def describe(exc: BaseException, strategy: Strategy | type[Strategy], name: str = "") -> str:
    """``strategy NAME raised TYPE at FILE:LINE: first line of the message``."""
    cls = strategy if isinstance(strategy, type) else type(strategy)
    label = name or getattr(cls, "name", "") or cls.__name__
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"strategy {label} raised {type(exc).__name__} at {where(exc, strategy)}"
    return f"{text}: {message}" if message else text
