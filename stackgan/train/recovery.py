"""Recovering from a non-finite loss, the same in both trainers.

The trainer keeps an in-memory copy of its last good state (models and optimisers, every
:data:`GOOD_STATE_EVERY` steps). When a loss turns NaN/inf before its update, :meth:`NanGuard.recover`
puts that state back, halves the learning-rate scale the trainer applies from then on, prints what
happened and writes a log record ``{"event": "nan", "where", "lr_scale", "message"}``. After
:data:`MAX_NAN_EVENTS` recoveries it gives up with :class:`TrainingDiverged`.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from stackgan.errors import UserError

MAX_NAN_EVENTS = 5
GOOD_STATE_EVERY = 25  # steps between in-memory snapshots used to recover from a NaN


class TrainingDiverged(UserError):
    """The losses kept turning NaN/inf even after lowering the learning rate."""


class NanGuard:
    """The last good state of ``parts`` (name -> object with ``state_dict`` / ``load_state_dict``:
    models, optimisers), the learning-rate scale and the number of recoveries so far."""

    def __init__(self, parts: dict[str, Any], max_events: int = MAX_NAN_EVENTS, every: int = GOOD_STATE_EVERY):
        self.parts = parts
        self.max_events = max_events
        self.every = every
        self.lr_scale = 1.0
        self.events = 0
        self.good: dict[str, Any] | None = None

    def snapshot(self, step: int) -> None:
        self.good = {"step": step, "state": {k: copy.deepcopy(v.state_dict()) for k, v in self.parts.items()}}

    def after_step(self, step: int) -> None:
        """Call after every completed step: takes a snapshot when one is due."""
        if self.good is None or step % self.every == 0:
            self.snapshot(step)

    def recover(self, where: str, loss: Any, step: int, advice: str, printer: Callable[[str], None],
                log: Any = None) -> int:
        """Restore the last good state after a non-finite ``where`` ("D" or "G") loss at ``step`` (the
        steps done so far); returns the step to continue from. ``advice`` ends the give-up message."""
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        self.events += 1
        if self.events > self.max_events:
            raise TrainingDiverged(f"the {where} loss was {value} again at step {step} after "
                                   f"{self.max_events} recoveries; giving up. {advice}")
        if self.good is not None:
            for k, part in self.parts.items():
                part.load_state_dict(self.good["state"][k])
            step = self.good["step"]
        self.lr_scale *= 0.5
        msg = (f"non-finite {where} loss ({value}) at step {step + 1}: skipped the step, "
               f"restored the state of step {step}, learning rates x{self.lr_scale:g} from now on")
        printer(msg)
        if log is not None:
            log.write(step=step, event="nan", where=where, lr_scale=self.lr_scale, message=msg)
        return step
