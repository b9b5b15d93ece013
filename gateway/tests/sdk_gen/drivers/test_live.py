"""pytest: the generated Python client against the live gateway that
gateway/tests/it/sdk_gen.rs starts. Its addresses come in WSGATE_WS_BASE, WSGATE_HTTP_BASE,
WSGATE_BEARER and WSGATE_API_KEY; the summary is written to WSGATE_SUMMARY for the checks the
Rust side makes at the backend.
"""

import asyncio
import json
import os

import client


def test_the_generated_client_against_a_live_gateway() -> None:
    env = os.environ
    summary = asyncio.run(
        client.main(
            env["WSGATE_WS_BASE"],
            env["WSGATE_HTTP_BASE"],
            env["WSGATE_BEARER"],
            env["WSGATE_API_KEY"],
        )
    )
    with open(env["WSGATE_SUMMARY"], "w", encoding="utf-8") as out:
        json.dump(summary, out)
    note = summary["note"]
    assert isinstance(note, dict)
    assert note["id"] == 7 and note["title"] == "note 7"
    assert summary["push"] == {"kind": "push", "n": 1}
    assert summary["close"] == {"code": 1000, "kind": "normal"}
    assert summary["first"] != summary["second"]
