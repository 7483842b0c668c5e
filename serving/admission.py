"""Deadline-aware admission: how long a model takes per batch, and how long a new request
would wait.

Each batcher keeps an exponentially weighted moving average of its forward time per batch
size (``ServiceTimes``, seeded by the timed warm-up). A request's predicted completion is
the time until an instance is free (or its batch closes), plus one forward of a full batch
for every round of full batches queued ahead of it, plus the forward of its own batch as it
stands with it, plus a margin learnt from how late recent batches were against their
prediction (``PredictionError``). A request is refused at once when that completion is
after what is left of its deadline, or after the deadline of a request already in the
batch it would join: a batch grows only while it answers everyone in it in time. A refusal
carries ``Retry-After`` set to how much too late it would be: the queue ahead drains by
that much meanwhile.

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
        """One batch's (actual, predicted) seconds, for the requests that had a prediction,
        in the order they were admitted; returns the lateness observed (None: nothing
        predicted in it).

        The batch is one observation: its requests share one forward, so their errors are
        one event (counted one by one, a batch of early answers would outweigh every late
        batch before it). It is that of the request admitted last, whose prediction saw
        the batch whole; those before it foresaw the batch smaller than it grew, and the
        growth was admitted only where it kept them in time, so their error is not the
        prediction's. (Judged by its latest answer, every batch that filled behind its
        first request looked a forward's growth late, and the margin, 0.4 s of a 1 s
        deadline, halved the batches under overload.)"""
        if not answers:
            return None
        return self.observe(*answers[-1])

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
                           delay_s: float) -> float | None:
    """Seconds until a request of ``rows`` queued behind ``queued_rows`` is answered, or
    None before the model was measured.

    Batches of up to ``max_rows`` run ``instances`` at a time, oldest first: the full ones
    ahead of it, then its own, which is the rows queued in the last, partial batch and its
    own rows (it joins that batch, or opens the next when it does not fit). ``busy_remaining_s``
    is how long until an instance is free (0 when one is idle), and ``delay_s`` how long
    until its batch closes for want of rows, counted from now (the batching delay from when
    the batch's first request was queued): with no full batch ahead and its batch not full,
    the batch is taken at whichever comes later.

    Its batch is foreseen as it stands, not as large as it may grow: whoever joins it later
    is admitted only while the batch still answers everyone in it within their deadlines
    (``DynamicBatcher``), so no one is made late by those behind them. (Foreseen as large
    as batches had lately been, a request that found the batch ahead of it full was
    foreseen alone once the clients seemed all held, and its batch then filled to 15 behind
    it: 0.4 s later than foreseen, batch after batch, under overload.)"""
    full_ahead, tail = divmod(queued_rows, max_rows)
    if tail and tail + rows > max_rows:
        full_ahead, tail = full_ahead + 1, 0  # it opens the next batch
    own = min(tail + rows, max_rows)
    own_s = times.estimate(own)
    if own_s is None:
        return None
    start = busy_remaining_s
    if not full_ahead and own < max_rows:
        start = max(start, delay_s)
    if full_ahead:
        full_s = times.estimate(max_rows)
        start += (full_ahead // instances) * (full_s or own_s)
    return start + own_s


def retry_after_s(predicted_s: float, deadline_s: float) -> int:
    """Whole seconds until the queue has drained by the amount the request was late."""
    return max(1, math.ceil(predicted_s - deadline_s))
