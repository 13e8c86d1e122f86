"""Stopping a training run cleanly on a signal.

SLURM sends SIGTERM at preemption and ahead of a job's time limit (``sbatch --signal``, then SIGKILL); Ctrl-C sends
SIGINT; SIGUSR1 is the requeue signal of PyTorch Lightning and of many cluster setups. While a run trains, these only
set a flag (:func:`stop_on_signals`); the training loop looks at it after each optimiser step, every process agreeing
on the step (:func:`agreed_stop`), writes a checkpoint there with the periodic checkpoints' atomic writer, and stops
with :class:`lrdm.errors.TrainingStopped` (commands exit with :data:`lrdm.errors.STOPPED_EXIT`). A second SIGINT
still stops at once (``KeyboardInterrupt``; an atomic write in flight removes its temporary file).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

import torch

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
"""Signals that stop a training run after its step in flight, with a checkpoint."""


@dataclass
class StopRequest:
    """The stop signal received so far (``signum``, None while none), set by :meth:`handle`."""

    signum: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: records the first stop signal; a SIGINT after any of them interrupts at once."""
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """While the block runs, ``signals`` only record themselves in the :class:`StopRequest` it yields; the previous
    handlers come back afterwards.  Outside the main thread (where Python cannot install handlers) nothing is
    installed and the request stays empty."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {sig: signal.signal(sig, request.handle) for sig in signals}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` of the DataLoader workers: a stop signal sent to the whole process tree (SLURM signals
    every process of a job step; Ctrl-C the foreground process group) must not kill a worker, whose death would
    abort the main process's clean stop; the main process shuts its workers down when it stops."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def agreed_stop(request: StopRequest, accelerator) -> int | None:
    """The stop signal every process acts on at this point (the largest number any of them received), or None.

    One process: its own request.  Several (``accelerate``/torchrun): a collective every process calls at the same
    step, so all of them stop after the same optimiser step, even when only one of them was signalled.
    """
    if accelerator.num_processes == 1:
        return request.signum
    flag = torch.tensor([request.signum or 0], device=accelerator.device)
    agreed = int(accelerator.gather(flag).max())
    return agreed or None


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    return signal.Signals(signum).name
