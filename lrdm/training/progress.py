"""The trainer's progress line, written to its log every ``log_every`` steps: step, loss, rate and time left.

Under the workflow the log is the train rule's ``log:`` file (lrdm.joblog), so ``tail -f`` follows a run, on
SLURM too. Torch-free and pure.
"""

from __future__ import annotations

SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600


def duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``12s`` (rounded to the second)."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, SECONDS_PER_HOUR)
    minutes, secs = divmod(rest, SECONDS_PER_MINUTE)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def progress_line(step: int, total: int, loss: float, steps_done: int, seconds: float) -> str:
    """``step 25/500 (5%)  loss 0.0312  4.10 steps/s  ETA 1m56s``: ``steps_done`` steps took ``seconds`` in this
    process (a resumed run counts from its resume), the ETA assumes the same rate for the steps left."""
    rate = steps_done / seconds if seconds > 0 else float("inf")
    left = (total - step) / rate if rate > 0 else float("inf")
    eta = duration(left) if left != float("inf") else "?"
    return f"step {step}/{total} ({100 * step // total}%)  loss {loss:.4g}  {rate:.2f} steps/s  ETA {eta}"
