"""Group commit in the event API: requests in flight together share one call, and each gets its own answer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from starter.api.batching import Batcher


class Squares:
    """A blocking batch function that records the batches it was given and can be held mid-call."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.release.wait(10)
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {items}")
        return [item * item for item in items]


Submitted = asyncio.Task[int]


async def _submit_during_a_call(
    batcher: Batcher[int, int], squares: Squares, first: int, then: list[int]
) -> tuple[Submitted, list[Submitted]]:
    """Submit ``first``, hold the call it starts, submit ``then`` meanwhile, and let the call finish."""
    squares.release.clear()
    running = asyncio.create_task(batcher.submit(first))
    while not squares.batches:
        await asyncio.sleep(0.01)
    waiting = [asyncio.create_task(batcher.submit(n)) for n in then]
    await asyncio.sleep(0.05)
    squares.release.set()
    return running, waiting


async def test_an_idle_batcher_runs_an_item_at_once_and_alone() -> None:
    squares = Squares()
    batcher = Batcher(squares)
    assert await batcher.submit(3) == 9
    assert squares.batches == [[3]]


async def test_items_submitted_during_a_call_go_together_in_the_next_and_each_gets_its_result() -> None:
    squares = Squares()
    batcher = Batcher(squares)
    first, waiting = await _submit_during_a_call(batcher, squares, 1, list(range(2, 8)))
    assert await first == 1
    assert await asyncio.gather(*waiting) == [n * n for n in range(2, 8)]
    assert squares.batches == [[1], list(range(2, 8))]


async def test_a_batch_is_never_larger_than_max_batch() -> None:
    squares = Squares()
    batcher = Batcher(squares, max_batch=4)
    first, waiting = await _submit_during_a_call(batcher, squares, 0, list(range(1, 11)))
    await first
    assert await asyncio.gather(*waiting) == [n * n for n in range(1, 11)]
    assert [len(batch) for batch in squares.batches] == [1, 4, 4, 2]


async def test_a_failed_call_fails_its_own_submitters_only() -> None:
    squares = Squares()
    batcher = Batcher(squares)
    held, doomed = await _submit_during_a_call(batcher, squares, 2, [3, -1])
    assert await held == 4
    for task in doomed:
        with pytest.raises(ValueError, match="negative item"):
            await task
    assert await batcher.submit(5) == 25


async def test_a_batch_function_that_loses_results_is_an_error_not_a_wrong_answer() -> None:
    batcher: Batcher[int, int] = Batcher(lambda items: items[1:])
    with pytest.raises(RuntimeError, match="a batch of 1 items gave 0 results"):
        await batcher.submit(1)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch must be at least 1, got 0"):
        Batcher(Squares(), max_batch=0)
