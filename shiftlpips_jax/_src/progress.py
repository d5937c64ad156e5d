"""Progress bars (tqdm) with the rate and ETA the evaluation runner and the training loop show.

One format for both: ``desc  42%|#####    | 21/50 12.3 triplets/s elapsed 00:02 ETA 00:02``.
The clock starts when the bar is made, so callers make it after compilation and the rate and
ETA are steady-state figures.

Example::

    bar = progress_bar(total=500, desc="2afc ST-LPIPS alex", unit="triplets")
    bar.update(50); bar.close()
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

__all__ = ["progress_bar", "write_line", "BAR_FORMAT", "format_interval"]

BAR_FORMAT = ("{desc} {percentage:3.0f}%|{bar:24}| {n_fmt}/{total_fmt} {rate_fmt} "
              "elapsed {elapsed} ETA {remaining}")

format_interval = tqdm.format_interval  # seconds -> "[H:]MM:SS"


def progress_bar(*, total: int, desc: str, unit: str, file: TextIO | None = None,
                 enabled: bool | None = True, initial: int = 0):
    """A tqdm bar in the package's format.

    Args:
      total: the count at completion.
      desc: text before the bar.
      unit: what is counted, shown in the rate (``triplets`` -> ``12.3 triplets/s``).
      file: the stream (default stderr).
      enabled: ``False`` draws nothing; ``None`` draws only on a terminal.
      initial: the count already done (a resumed run).

    Returns:
      The ``tqdm`` instance: ``update(n)``, ``write(text)``, ``close()``.
    """
    return tqdm(total=total, desc=desc, unit=unit, file=file, disable=None if enabled is None
                else not enabled, initial=initial, smoothing=0,
                bar_format=BAR_FORMAT, dynamic_ncols=False, ascii=True, mininterval=0.25)


def write_line(text: str, *, file: TextIO | None = None) -> None:
    """Prints a line (to stdout by default) above any progress bar being drawn, and flushes.

    Args:
      text: the line, without its newline.
      file: the stream (default stdout).
    """
    file = file or sys.stdout
    tqdm.write(text, file=file)
    file.flush()
