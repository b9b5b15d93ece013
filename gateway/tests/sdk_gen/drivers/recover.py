"""Drives the generated Python client's recovery against a live gateway.

Used by gateway/tests/it/sdk_gen.rs, as drivers/recover.ts: two group posts, a close by
the backend, three posts while the client is away, then on reconnect the three replayed
once and `recovered`, then a live post; a client starting from a position of another
epoch gets `notRecovered`. Prints one JSON line.
"""

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict

from notes_backend import Bearer, NotesBackend
from notes_client import (
    CloseError,
    GroupMessage,
    Handlers,
    NotesClient,
    NotRecoveredSignal,
    Position,
    Reconnect,
    RecoveredSignal,
)


async def main(ws_base: str, http_base: str, bearer: str, api_key: str) -> None:
    events: list[str] = []
    messages: list[GroupMessage] = []
    recovered: list[RecoveredSignal] = []
    not_recovered: list[NotRecoveredSignal] = []
    opens: list[int] = []
    closes: list[int] = []
    changed = asyncio.Event()

    def note(record: Callable[[], None]) -> None:
        record()
        changed.set()

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not check():
                changed.clear()
                await changed.wait()

    def on_message(message: GroupMessage) -> None:
        messages.append(message)
        note(lambda: events.append(f"message {message.offset}"))

    def on_recovered(signal: RecoveredSignal) -> None:
        recovered.append(signal)
        note(lambda: events.append(f"recovered {signal.offset}"))

    def on_close(error: CloseError, delay: float | None) -> None:
        note(lambda: closes.append(error.code))

    # The reconnection waits long enough for the posts made meanwhile to go out first.
    client = NotesClient(
        ws_base,
        stage="prod",
        api_key=api_key,
        token="good-token",
        reconnect=Reconnect(base=1.5, max=1.5),
        request_timeout=5.0,
        recover=True,
    )
    client.on(
        Handlers(
            on_group_message=on_message,
            on_recovered=on_recovered,
            on_not_recovered=lambda s: note(lambda: not_recovered.append(s)),
            on_open=lambda: note(lambda: opens.append(1)),
            on_close=on_close,
        )
    )
    backend = NotesBackend(http_base, "prod", Bearer(bearer))
    await client.connect()
    first = await client.whoami()
    assert isinstance(first, dict)
    for n in (1, 2):
        await asyncio.to_thread(backend.post_to_group, "feed", {"n": n})
    await until(lambda: len(messages) == 2)
    await asyncio.to_thread(backend.delete, str(first["connectionId"]))
    await until(lambda: len(closes) == 1)
    for n in (3, 4, 5):
        await asyncio.to_thread(backend.post_to_group, "feed", {"n": n})
    assert len(opens) == 1, "the posts went out while the client was away"
    await until(lambda: len(opens) == 2 and len(recovered) == 1)
    last = await asyncio.to_thread(backend.post_to_group, "feed", {"n": 6})
    await until(lambda: len(messages) == 6)
    positions = client.positions
    await client.close()

    stale_signals: list[NotRecoveredSignal] = []
    stale = NotesClient(
        ws_base,
        stage="prod",
        api_key=api_key,
        token="good-token",
        recover=True,
        recover_from=[Position("feed", "stale", 1)],
    )
    stale.on(Handlers(on_not_recovered=lambda s: note(lambda: stale_signals.append(s))))
    await stale.connect()
    await until(lambda: len(stale_signals) == 1)
    stale_positions = stale.positions
    await stale.close()

    summary = {
        "data": [m.data for m in messages],
        "offsets": [m.offset for m in messages],
        "epochs": sorted({m.epoch for m in messages}),
        "events": events,
        "recovered": {"type": "recovered", **asdict(recovered[0])},
        "notRecovered": len(not_recovered),
        "lastPost": dict(last),
        "positions": [asdict(p) for p in positions],
        "stale": {"type": "notRecovered", **asdict(stale_signals[0])},
        "stalePositions": [asdict(p) for p in stale_positions],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
