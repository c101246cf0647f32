"""Training to a time budget: a short timing probe fixes the step count before step 1.

A run given `--time-budget SECONDS` (char-lm's default) never stops because time ran out:
that would cut its learning-rate schedule short and tie the result to the machine's load
at the end. Instead the trainer first times a few real training steps of this model, batch
and chunk length on this machine (after warm-up steps that pay for first-call allocations
and thread start-up) and one validation pass, and `steps_for` turns those into the step
count that fits the budget. From then on the run is an ordinary run of that many steps
(warm-up and cosine decay for that count). The count, the measured seconds and the budget
are recorded (train.json and the resume state), so `--resume` continues with the recorded
count without probing again, and `--steps N` reruns the same run exactly.

Torch-free: the trainer hands `measure` its own step and evaluation as callables, and tests
hand it a fake clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# char-lm's default: ~10 minutes of training on a 2-core machine, whatever its speed
# (3,000 fixed steps took 604 s on one 2-core machine and 1,090 s on another).
DEFAULT_SECONDS = 600.0
WARMUP_STEPS = 2  # untimed: the first steps allocate and start threads
PROBE_STEPS = 16  # timed steps, at most (~3 s of the default char-lm model)...
PROBE_SECONDS = 3.0  # ...or fewer once this much (or PROBE_SHARE of the budget) has passed
PROBE_SHARE = 0.02
MIN_TIMED = 2
# The step count's share of the budget left for what the probe does not time: checkpoint
# and resume-state saves at each evaluation, the progress bar, load that changes.
MARGIN = 0.05
MIN_STEPS_FIT = 200  # below this a schedule is mostly warm-up: the budget is raised instead
MAX_STEPS_FIT = 200_000  # a fast model on a long budget: a mismeasured clock cannot run away
ROUND_TO = 10  # a step count a person can retype: `--steps 2850`


@dataclass(frozen=True)
class Budget:
    """What the timing probe measured and the step count it fixed."""

    seconds: float  # the budget asked for
    s_per_step: float  # measured mean seconds of one training step
    eval_s: float  # measured seconds of one validation pass
    probe_s: float  # the probe's own wall time (counted in the budget)
    steps: int  # the run's step count
    clamped: str | None = None  # "minimum" | "maximum" when the fit was out of range

    def line(self) -> str:
        """The one line training prints before it starts."""
        return self.measured() + f"; rerun with --steps {self.steps} for this exact run"

    def measured(self) -> str:
        """What the probe measured and chose (and a clamp, if any)."""
        text = (
            f"timing probe: {self.s_per_step:.3g} s/step -> {self.steps:,} steps in "
            f"{self.seconds:g} s (probe {self.probe_s:.1f} s, validation {self.eval_s:.2g} s)"
        )
        if self.clamped == "minimum":
            text += f"; raised to the minimum of {MIN_STEPS_FIT} steps: expect more than the budget"
        elif self.clamped == "maximum":
            text += f"; capped at {MAX_STEPS_FIT:,} steps: expect less than the budget"
        return text

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> Budget | None:
        """The Budget a run recorded (None for a run of fixed --steps, or an older run)."""
        if not isinstance(record, dict):
            return None
        return cls(**{k: record[k] for k in cls.__dataclass_fields__ if k in record})


def steps_for(
    seconds: float, s_per_step: float, eval_s: float, eval_every: int, probe_s: float
) -> tuple[int, str | None]:
    """The step count whose training fits `seconds`, and whether it was clamped.

    The budget pays for the probe already spent, the step-0 validation and one validation
    every `eval_every` steps; MARGIN of it is kept back for saves and noise. The count is
    rounded down to a multiple of ROUND_TO, then clamped to MIN_STEPS_FIT..MAX_STEPS_FIT."""
    available = (seconds - probe_s) * (1 - MARGIN) - eval_s
    per_step = s_per_step + eval_s / eval_every
    if per_step <= 0:  # a clock too coarse to see a step: as many as allowed
        return MAX_STEPS_FIT, "maximum"
    fit = math.floor(available / per_step) // ROUND_TO * ROUND_TO if available > 0 else 0
    if fit < MIN_STEPS_FIT:
        return MIN_STEPS_FIT, "minimum"
    if fit > MAX_STEPS_FIT:
        return MAX_STEPS_FIT, "maximum"
    return fit, None


def measure(
    seconds: float,
    step: Callable[[], Any],
    evaluate: Callable[[], Any],
    eval_every: int,
    clock: Callable[[], float] = time.perf_counter,
    *,
    adaptive: bool = True,
) -> Budget:
    """Time `step` (one real training step) and `evaluate` (one validation pass) and fix
    the step count for a budget of `seconds`. The caller undoes what the steps changed.

    A slow step stops the timing early (after PROBE_SECONDS or PROBE_SHARE of the budget);
    `adaptive=False` always times PROBE_STEPS, for ranks that step together and so must
    take the same number of steps."""
    start = clock()
    for _ in range(WARMUP_STEPS):
        step()
    limit = min(PROBE_SECONDS, PROBE_SHARE * seconds) if adaptive else math.inf
    timed_start = clock()
    timed = 0
    while timed < PROBE_STEPS:
        step()
        timed += 1
        if timed >= MIN_TIMED and clock() - timed_start >= limit:
            break
    s_per_step = (clock() - timed_start) / timed
    eval_start = clock()
    evaluate()
    end = clock()
    eval_s, probe_s = end - eval_start, end - start
    steps, clamped = steps_for(seconds, s_per_step, eval_s, eval_every, probe_s)
    return Budget(seconds, s_per_step, eval_s, probe_s, steps, clamped)
