"""What a fit shows while it runs: a message while Numba compiles, then iteration, ELBO, change and rate;
under stochastic VI, step and the minibatch's bound per unit before its step (not an ELBO that must rise).

Three displays, chosen by :func:`for_fit` (the API) or by the command line:

- :class:`Bar`, a tqdm line on a terminal, or tqdm's widget in a notebook
  (``tqdm.auto``); tqdm is imported only here, when there is someone to see it;
- :class:`Lines`, a plain line every ``every`` seconds where stderr is a file or
  a pipe (a log), with a last line at the end if any was written;
- nothing (``--quiet``, ``progress=False``, a script's fit by default).

The rate is counted from the first iteration of each start (a cold run's first
sweep includes the compilation), and the last frame shows the last iteration.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    """The calls a fit makes to its display, in this order."""

    def start(self, model: str, max_iter: int, restarts: int) -> None: ...
    def compiling(self) -> None: ...
    def __call__(self, iteration: int, elbo: float, change: float) -> None: ...
    def close(self) -> None: ...


def compile_message(model: str) -> str:
    return f"compiling kernels for {model} (first run; cached afterwards)"


def _state(elbo: float, change: float, stochastic: bool) -> str:
    """The figure of an iteration: the ELBO and its change, or SVI's trace entry, which is no ELBO (docs/scale.md,
    "Stochastic VI": each minibatch's bound per unit before its step, held out on the first pass)."""
    if stochastic:
        return f"minibatch bound per unit {elbo:.10g} (before its step)"
    return f"ELBO {elbo:.10g}, change {change:+.3e}" if math.isfinite(change) else f"ELBO {elbo:.10g}"


def _count(stochastic: bool) -> str:
    return "step" if stochastic else "iteration"


class _Starts:
    """Iterations of one start after another (restarts begin again at 1): the start's number and the time
    and iteration its rate is counted from."""

    def __init__(self):
        self.model, self.max_iter, self.restarts = "", 0, 1
        self.number = 0
        self.last: tuple[int, float, float] | None = None
        self.first_time = self.last_time = 0.0
        self.first_iteration = 0

    def start(self, model: str, max_iter: int, restarts: int) -> None:
        self.model, self.max_iter, self.restarts = model, max_iter, restarts

    def record(self, iteration: int, elbo: float, change: float, now: float) -> bool:
        """Keep this iteration; True if it begins a start."""
        new = self.last is None or iteration <= self.last[0]
        if new:
            self.number += 1
            self.first_time, self.first_iteration = now, iteration
        self.last, self.last_time = (iteration, elbo, change), now
        return new

    def label(self) -> str:
        return self.model + (f" (start {self.number}/{self.restarts})" if self.restarts > 1 else "")

    def rate(self) -> float | None:
        """Iterations per second from the first iteration of this start to the last one."""
        done = self.last[0] - self.first_iteration
        seconds = self.last_time - self.first_time
        return done / seconds if done > 0 and seconds > 0 else None


class Bar:
    """A tqdm display; ``notebook``: tqdm.auto (the widget in Jupyter, a text line elsewhere)."""

    def __init__(self, file: TextIO | None = None, notebook: bool = False, interval: float = 0.1,
                 stochastic: bool = False):
        self.file, self.notebook, self.interval, self.stochastic = file, notebook, interval, stochastic
        self.runs = _Starts()
        self._bar = None
        self._shown = 0.0

    def _tqdm(self, **options):
        if self.notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        file = self.file if self.file is not None else sys.stderr
        try:
            sized = os.get_terminal_size(file.fileno()).columns > 0
        except (AttributeError, OSError, ValueError):
            sized = False
        # a terminal follows its width; a stream without one (a file, a terminal that reports 0 columns, where
        # tqdm would cut every line to nothing) gets COLUMNS or 100
        ncols = None if sized else shutil.get_terminal_size((100, 24)).columns
        return tqdm(file=file, dynamic_ncols=sized, ncols=ncols, **options)

    def start(self, model: str, max_iter: int, restarts: int) -> None:
        self.runs.start(model, max_iter, restarts)

    def compiling(self) -> None:
        self._bar = self._tqdm(desc=compile_message(self.runs.model), bar_format="{desc} … {elapsed}", leave=False)
        self._bar.refresh()

    def __call__(self, iteration: int, elbo: float, change: float) -> None:
        now = time.monotonic()
        if self.runs.record(iteration, elbo, change, now):
            self._close(leave=False)
            # the rate is tqdm's (n − initial) / elapsed with smoothing 0: from this, the first iteration
            self._bar = self._tqdm(desc=self.runs.label(), total=self.runs.max_iter, initial=iteration,
                                   smoothing=0, unit="it", leave=True,
                                   bar_format="{desc}: " + _count(self.stochastic) +
                                              " {n}/{total}{postfix} [{elapsed}, {rate_fmt}]")
            self._draw(now)
        elif now - self._shown >= self.interval:
            self._draw(now)

    def _draw(self, now: float) -> None:
        it, elbo, change = self.runs.last
        self._bar.n = it
        self._bar.set_postfix_str(_state(elbo, change, self.stochastic), refresh=False)
        self._bar.refresh()
        self._shown = now

    def _close(self, leave: bool) -> None:
        if self._bar is not None:
            self._bar.leave = leave
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """The last frame: the last iteration, whenever it came."""
        if self._bar is not None and self.runs.last is not None:
            self._draw(time.monotonic())
        self._close(leave=self.runs.last is not None)


class Lines:
    """Plain lines for a log: the compile message, then a line every ``every`` seconds."""

    def __init__(self, file: TextIO | None = None, every: float = 10.0, stochastic: bool = False):
        self.file, self.every, self.stochastic = file, every, stochastic
        self.runs = _Starts()
        self._written = False
        self._line_at = 0.0

    def _write(self, text: str) -> None:
        out = self.file if self.file is not None else sys.stderr
        print(f"ppvi: {text}", file=out, flush=True)
        self._written = True

    def start(self, model: str, max_iter: int, restarts: int) -> None:
        self.runs.start(model, max_iter, restarts)
        self._line_at = time.monotonic()

    def compiling(self) -> None:
        self._write(compile_message(self.runs.model))

    def __call__(self, iteration: int, elbo: float, change: float) -> None:
        now = time.monotonic()
        self.runs.record(iteration, elbo, change, now)
        if now - self._line_at >= self.every:
            self._line(now)

    def _line(self, now: float) -> None:
        it, elbo, change = self.runs.last
        rate = self.runs.rate()
        self._write(f"{self.runs.label()}: {_count(self.stochastic)} {it}/{self.runs.max_iter}, "
                    f"{_state(elbo, change, self.stochastic)}"
                    + (f", {rate:.3g} it/s" if rate is not None else ""))
        self._line_at = now

    def close(self) -> None:
        if self._written and self.runs.last is not None:
            self._line(time.monotonic())


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell), without importing IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def for_fit(progress: object, stochastic: bool = False) -> Progress | None:
    """The API's ``progress``: None, a bar in a notebook and nothing elsewhere; True, a bar (tqdm.auto);
    False, nothing; or a display of one's own (:class:`Progress`).  ``stochastic``: the fit is SVI's."""
    if progress is None:
        return Bar(notebook=True, stochastic=stochastic) if in_notebook() else None
    if progress is True:
        return Bar(notebook=True, stochastic=stochastic)
    if progress is False:
        return None
    return progress      # (checked by the API: it has the Progress methods)
