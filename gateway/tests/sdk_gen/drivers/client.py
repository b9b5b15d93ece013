"""Drives the generated Python client of tests/sdk_gen/api.yaml against a live gateway.

Used by gateway/tests/it/sdk_gen.rs: connect with an API key and a subprotocol token, a
typed one-way send, typed two-way replies, a push through the generated backend client
(bearer), a reconnection after DELETE @connections, and an acknowledged route (returns on
the ack; sent while the connection is down, it goes out on the next one; a nack that is
not retryable raises AckError). Run by pytest (test_live.py), or as a script that prints the
summary as one JSON line.
"""

import asyncio
import json
import sys
from collections.abc import Callable

from notes_backend import Bearer, NotesBackend
from notes_client import (
    AckError,
    CloseError,
    Handlers,
    JsonValue,
    NotesClient,
    Reconnect,
)


async def main(
    ws_base: str, http_base: str, bearer: str, api_key: str
) -> dict[str, object]:
    pushes: list[JsonValue] = []
    closes: list[CloseError] = []
    opens: list[int] = []
    changed = asyncio.Event()

    def note(record: Callable[[], None]) -> None:
        record()
        changed.set()

    def on_close(error: CloseError, delay: float | None) -> None:
        if delay is not None:
            note(lambda: closes.append(error))

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not check():
                changed.clear()
                await changed.wait()

    client = NotesClient(
        ws_base,
        stage="prod",
        api_key=api_key,
        token="good-token",
        reconnect=Reconnect(base=0.05, max=0.2),
        request_timeout=5.0,
    )
    client.on(
        Handlers(
            on_push=lambda message: note(lambda: pushes.append(message)),
            on_open=lambda: note(lambda: opens.append(1)),
            on_close=on_close,
        )
    )
    await client.connect()
    await client.addnote({"title": "first", "tags": ["a", "b"], "priority": "high"})
    reply = await client.getnote({"id": 7})
    assert reply["id"] == 7 and reply["title"] == "note 7", reply
    first = await client.whoami()
    assert isinstance(first, dict)
    first_id = str(first["connectionId"])

    backend = NotesBackend(http_base, "prod", Bearer(bearer))
    await asyncio.to_thread(backend.post, first_id, {"kind": "push", "n": 1})
    await until(lambda: len(pushes) == 1)
    await client.archive({"note": 11})
    await asyncio.to_thread(backend.delete, first_id)
    await until(lambda: len(closes) == 1)
    # Sent while no connection is open: kept until the next one, then acknowledged.
    while_away = asyncio.create_task(client.archive({"note": 12}))
    await asyncio.sleep(0)  # Lets the call start: it waits for a connection.
    waiting = client.unacknowledged
    await until(lambda: len(opens) == 2)
    await while_away
    refused = ""
    try:
        await client.archive({"note": 13, "reject": True})
    except AckError as error:
        refused = str(error)
    second = await client.whoami()
    assert isinstance(second, dict)
    assert second["connectionId"] != first_id
    await client.close()
    summary: dict[str, object] = {
        "note": dict(reply),
        "push": pushes[0],
        "first": first_id,
        "second": second["connectionId"],
        "close": {"code": closes[0].code, "kind": closes[0].kind.value},
        "archive": {
            "waiting": waiting,
            "refused": refused,
            "unacknowledged": client.unacknowledged,
        },
    }
    return summary


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
