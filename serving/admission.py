"""Deadline-aware admission: how long a model takes per batch, and how long a new request
would wait.

Each batcher keeps an exponentially weighted moving average of its forward time per batch
size (``ServiceTimes``, seeded by the timed warm-up). A request's predicted completion is
the time until an instance is free, plus one forward of a full (or the last, partial) batch
for every round of batches queued ahead of it and its own (at least as large as the batches
requests lately rode in), plus the batching delay when its batch will not fill, plus a
margin learnt from how late recent batches were against their prediction
(``PredictionError``). A request predicted to finish after what is left of its deadline is
refused at once, with ``Retry-After`` set to how much too late it would be: the queue ahead
of it drains by that much meanwhile.

Nothing is refused while the model is idle (empty queue, no batch computing): a model that
was measured slow once would otherwise refuse every request and never be measured again.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# Weight of the newest forward in the average: about the last ten batches count.
EWMA_WEIGHT = 0.2
# The margin: this quantile of how late the last MARGIN_WINDOW batches were (of 32, about
# the second latest). The 99th percentile (two thirds of the way to the latest) let fewer
# late answers through under overload, but one late batch then held the margin high for
# 32 batches, and at saturation that refused requests that would have been in time
# (docs/BENCHMARKS.md).
MARGIN_WINDOW = 32
MARGIN_QUANTILE = 0.95


@dataclass(slots=True)
class ServiceTimes:
    """Forward seconds per batch size, an EWMA per size seen."""

    weight: float = EWMA_WEIGHT
    typical_rows: float = 0.0  # the rows of the batch a request lately rode in (an EWMA)
    batches: int = 0  # batches observed
    _by_rows: dict[int, float] = field(default_factory=dict)
    _sizes: list[int] = field(default_factory=list)  # sorted keys of _by_rows

    def seed(self, rows: int, seconds: float) -> None:
        """A forward time measured before serving (at warm-up): a first estimate for
        ``rows``, which batches then refine; it says nothing of the batches to come."""
        if rows not in self._by_rows:
            bisect.insort(self._sizes, rows)
        self._by_rows[rows] = seconds

    def observe(self, rows: int, seconds: float) -> None:
        # The batch size a request rode in, averaged over requests, not batches: each of
        # its rows counts once, so one small batch after a burst weighs as little as the
        # few requests it carried (averaged per batch, a few small ones pulled the forecast
        # of every request behind them down to a fraction of the batches they then joined).
        share = 1.0 - (1.0 - self.weight) ** rows
        self.typical_rows = (rows if not self.batches
                             else self.typical_rows + share * (rows - self.typical_rows))
        self.batches += 1
        current = self._by_rows.get(rows)
        if current is None:
            bisect.insort(self._sizes, rows)
            self._by_rows[rows] = seconds
        else:
            self._by_rows[rows] = current + self.weight * (seconds - current)

    def estimate(self, rows: int) -> float | None:
        """Seconds for a batch of ``rows``: measured, else interpolated between the nearest
        sizes measured, else scaled linearly from the largest smaller one (an upper bound
        where forward time grows slower than the batch), else the smallest larger one's.
        None before any batch was measured or seeded."""
        if rows in self._by_rows:
            return self._by_rows[rows]
        if not self._sizes:
            return None
        at = bisect.bisect_left(self._sizes, rows)
        if at == 0:
            return self._by_rows[self._sizes[0]]
        low = self._sizes[at - 1]
        if at == len(self._sizes):
            return self._by_rows[low] * rows / low
        high = self._sizes[at]
        t_low, t_high = self._by_rows[low], self._by_rows[high]
        return t_low + (t_high - t_low) * (rows - low) / (high - low)

    def snapshot(self) -> dict[int, float]:
        return dict(self._by_rows)


@dataclass(slots=True)
class PredictionError:
    """How late batches were answered against their prediction (seconds; negative: early),
    over the last ``window`` batches. ``margin``, added to every prediction, is the
    ``quantile`` of that lateness: what the model leaves out (forward time under CPU
    contention, batches larger than foreseen, the event loop's own delays) is learnt from
    what happened rather than assumed.

    A high quantile, not a mean and spread: the deadline is a bound on the late side, and
    early answers (small batches under bursty load) widen a spread as much as late ones do,
    which refused requests that would have been in time."""

    window: int = MARGIN_WINDOW
    quantile: float = MARGIN_QUANTILE
    observed: int = 0  # batches learnt from
    margin: float = 0.0  # seconds to add to a prediction
    _errors: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self._errors = deque(maxlen=self.window)

    def observe_batch(self, answers: list[tuple[float, float]]) -> float | None:
        """One batch's (actual, predicted) seconds, for the requests that had a prediction;
        returns the lateness observed (None: nothing predicted in it).

        The batch is one observation, of its latest answer against its prediction: its
        requests share one forward, so their errors are one event (counted one by one,
        a batch of early answers would outweigh every late batch before it)."""
        if not answers:
            return None
        return self.observe(*max(answers, key=lambda pair: pair[0] - pair[1]))

    def observe(self, actual_s: float, predicted_s: float) -> float:
        """One batch's lateness; returns it."""
        late = actual_s - predicted_s
        self.observed += 1
        self._errors.append(late)
        self.margin = max(float(np.quantile(self._errors, self.quantile)), 0.0)
        return late

    @property
    def recent(self) -> list[float]:
        """The lateness of the batches in the window, oldest first."""
        return list(self._errors)


def predicted_completion_s(times: ServiceTimes, *, queued_rows: int, rows: int,
                           max_rows: int, instances: int, busy_remaining_s: float,
                           delay_s: float, joinable_rows: int | None = None) -> float | None:
    """Seconds until a request of ``rows`` queued behind ``queued_rows`` is answered, or
    None before the model was measured.

    ``busy_remaining_s`` is how long until an instance is free (0 when one is idle). Batches
    of up to ``max_rows`` run ``instances`` at a time, oldest first, each at least as large
    as batches have lately been, unless at most ``joinable_rows`` more can still join."""
    total = queued_rows + rows
    # Requests keep arriving and join this one's batch until it is taken: it will be as
    # large as batches have lately been, if not larger. So even on an idle instance: the
    # first of a burst finds it idle, and its batch fills within the batching delay.
    # Before any batch has run (service times seeded at warm-up), nothing says how large
    # batches will be: a full one, the most it can be (foreseen from the rows queued, the
    # first burst after a start was predicted at a fifth of its wait, and that one late
    # batch widened the margin for the 32 after it).
    typical = round(times.typical_rows) if times.batches else max_rows
    if joinable_rows is not None:
        # No more can join than there are requesters outside: with 16 clients and 15 of
        # them in the computing batch, the 16th rides alone, whatever batches lately were
        # (foreseen in a batch of 15, it was refused at 1x saturation, again and again).
        typical = min(typical, total + joinable_rows)
    batch = max(min(total, max_rows), min(typical, max_rows))
    per_batch = times.estimate(batch)
    if per_batch is None:
        return None
    batches = math.ceil(total / max_rows)
    rounds = math.ceil(batches / instances)
    waiting = delay_s if total < max_rows else 0.0
    return busy_remaining_s + rounds * per_batch + waiting


def retry_after_s(predicted_s: float, deadline_s: float) -> int:
    """Whole seconds until the queue has drained by the amount the request was late."""
    return max(1, math.ceil(predicted_s - deadline_s))
