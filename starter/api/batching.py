"""Group commit: requests that arrive together share one thread hop and one database transaction.

The event API answers a request only after its bookkeeping is durable, and at a few hundred requests a second
a thread hop and a transaction per request cost more than the work in them (docs/benchmarks.md). A
:class:`Batcher` runs a blocking function on a list of items in a worker thread, one call at a time: an item
submitted while the idle batcher waits for nobody (no timer, no added latency), and items submitted while a
call is running wait for the next call, which takes them all. Under load batches grow by themselves; when idle
each item goes alone at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs ``run(items)`` in a thread for everything submitted meanwhile; each submitter gets its own result.

    ``run`` returns one result per item, in order. An exception it raises fails every submitter of that batch
    (the callers' retries are the recovery, as for any failed request); a later batch is unaffected.
    """

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]], *, max_batch: int = 500) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                results = await asyncio.to_thread(self._run, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} items gave {len(results)} results")
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a submitter cancelled (client gone): nobody to tell
                    future.set_result(result)
