"""Deadline-aware admission: how long a model takes per batch, and how long a new request
would wait.

Each batcher keeps an exponentially weighted moving average of its forward time per batch
size (``ServiceTimes``). A request's predicted completion is the time until an instance is
free, plus one forward of a full (or the last, partial) batch for every round of batches
queued ahead of it and its own, plus the batching delay when its batch will not fill. A
request predicted to finish after its deadline is refused at once, with ``Retry-After`` set
to how much too late it would be: the queue ahead of it drains by that much meanwhile.

Nothing is refused while the model is idle (empty queue, no batch computing): a model that
was measured slow once would otherwise refuse every request and never be measured again.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

# Weight of the newest forward in the average: about the last ten batches count.
EWMA_WEIGHT = 0.2


@dataclass(slots=True)
class ServiceTimes:
    """Forward seconds per batch size, an EWMA per size seen."""

    weight: float = EWMA_WEIGHT
    typical_rows: float = 0.0  # an EWMA of the rows of the batches run
    _by_rows: dict[int, float] = field(default_factory=dict)
    _sizes: list[int] = field(default_factory=list)  # sorted keys of _by_rows

    def observe(self, rows: int, seconds: float) -> None:
        self.typical_rows = (rows if not self._sizes
                             else self.typical_rows + self.weight * (rows - self.typical_rows))
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
        None before any batch was measured."""
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
    """How late answers came against their prediction (seconds; negative: early), as an
    EWMA of the error and of its spread. ``margin`` is added to every prediction, so that
    what the model leaves out (the event loop's own delays, batches larger than foreseen)
    is learnt from what happened rather than assumed."""

    weight: float = EWMA_WEIGHT
    mean: float = 0.0
    spread: float = 0.0
    seen: bool = False

    def observe(self, actual_s: float, predicted_s: float) -> None:
        error = actual_s - predicted_s
        if not self.seen:
            self.mean, self.spread, self.seen = error, abs(error), True
            return
        self.mean += self.weight * (error - self.mean)
        self.spread += self.weight * (abs(error - self.mean) - self.spread)

    @property
    def margin(self) -> float:
        """Seconds to add to a prediction: the usual lateness and twice its spread."""
        return max(self.mean + 2 * self.spread, 0.0)


def predicted_completion_s(times: ServiceTimes, *, queued_rows: int, rows: int,
                           max_rows: int, instances: int, busy_remaining_s: float,
                           delay_s: float) -> float | None:
    """Seconds until a request of ``rows`` queued behind ``queued_rows`` is answered, or
    None before the model was measured.

    ``busy_remaining_s`` is how long until an instance is free (0 when one is idle). Batches
    of up to ``max_rows`` run ``instances`` at a time, oldest first (while every instance is
    busy, at least as large as batches have lately been)."""
    total = queued_rows + rows
    batch = min(total, max_rows)
    if busy_remaining_s > 0:
        # While every instance is busy, requests keep arriving and join this one's batch
        # before it runs: it will be as large as batches have lately been, if not larger.
        batch = max(batch, min(round(times.typical_rows), max_rows))
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
