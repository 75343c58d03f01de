"""Which time steps each window covers: consecutive, overlapping windows of every camera, decided before decoding.

A window is one VGGT_MV pass over `size` consecutive time steps of all N cameras. Consecutive windows share
`overlap` steps, from which the later one is aligned to the earlier (vggt_mv.windows.sim3); the last window ends at
the last step, so it may overlap its neighbour by more.
"""

from __future__ import annotations

from dataclasses import dataclass

# A window's share of steps that the next window sees again: enough overlapping frames for a robust alignment.
DEFAULT_OVERLAP_FRACTION = 0.25


@dataclass(frozen=True)
class TimeWindows:
    """The windows of one run as (start, stop) step ranges, stop exclusive, in time order."""

    ranges: tuple[tuple[int, int], ...]
    size: int
    overlap: int

    @property
    def count(self) -> int:
        """How many passes the run makes."""
        return len(self.ranges)

    @property
    def steps(self) -> int:
        """Time steps covered (the run's T)."""
        return self.ranges[-1][1]

    def overlap_steps(self, index: int) -> range:
        """The steps window `index` shares with the window before it (empty for the first)."""
        if index == 0:
            return range(0)
        return range(self.ranges[index][0], self.ranges[index - 1][1])

    def new_steps(self, index: int) -> range:
        """The steps window `index` is the first to predict (what it writes)."""
        start, stop = self.ranges[index]
        return range(start if index == 0 else self.ranges[index - 1][1], stop)

    def describe(self) -> str:
        """'3 windows of 8 time steps, overlapping by 2 (steps 0-7, 6-13, 12-19)'."""
        if self.count == 1:
            return "one pass over every time step"
        spans = ", ".join(f"{start}-{stop - 1}" for start, stop in self.ranges)
        return (f"{self.count} windows of {self.size} time steps, overlapping by {self.overlap} (steps {spans}); each "
                "window is one pass, aligned to the one before by a Sim(3) from the shared steps")


def default_overlap(size: int) -> int:
    """A quarter of the window, at least one step, always leaving at least one new step per window."""
    return max(1, min(size - 1, round(size * DEFAULT_OVERLAP_FRACTION)))


def plan_windows(steps: int, size: int, overlap: int | None = None) -> TimeWindows:
    """Windows of `size` steps covering 0..steps-1, each sharing at least `overlap` steps with the one before."""
    if steps < 1:
        raise ValueError("a run needs at least one time step")
    if size >= steps:
        return TimeWindows(((0, steps),), steps, 0)
    if size < 2:
        raise ValueError(f"a window of {size} time step cannot overlap the next; use at least 2 per window")
    overlap = default_overlap(size) if overlap is None else overlap
    if not 1 <= overlap < size:
        raise ValueError(f"the overlap must be from 1 to {size - 1} time steps (the window's size minus one), "
                         f"got {overlap}")
    stride = size - overlap
    starts = list(range(0, steps - size, stride)) + [steps - size]
    return TimeWindows(tuple((start, start + size) for start in starts), size, overlap)
