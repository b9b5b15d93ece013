"""Drives the generated Python backend client of tests/sdk_gen/api.yaml.

Used by gateway/tests/it/sdk_gen.rs against a live callback API, bearer or SigV4: post,
get, groups, a group post, a broadcast, listings, a DELETE with a close code, then a post
to the closed connection. Prints one JSON line.
"""

import json
import sys

from notes_backend import Bearer, CallbackAuth, CallbackError, NotesBackend, SigV4


def main(http_base: str, auth_json: str, connection_id: str) -> None:
    settings = json.loads(auth_json)
    auth: CallbackAuth
    if settings["kind"] == "bearer":
        auth = Bearer(settings["token"])
    else:
        auth = SigV4(
            settings["region"],
            settings["credentials"]["accessKeyId"],
            settings["credentials"]["secretAccessKey"],
        )
    backend = NotesBackend(http_base, "prod", auth)
    backend.post(connection_id, "hello from python")
    info = backend.get(connection_id)
    backend.join(connection_id, "room:1")
    groups = backend.groups_of(connection_id)
    group_post = backend.post_to_group("room:1", {"g": 1})
    broadcast = backend.broadcast(b"to all")
    members = backend.members("room:1", max_results=10)
    connections = backend.connections()
    backend.leave(connection_id, "room:1")
    after = backend.groups_of(connection_id)
    backend.delete(connection_id, code=4001, reason="bye")
    gone = None
    try:
        backend.post(connection_id, "late")
    except CallbackError as error:
        if not error.gone:
            raise
        gone = error.error_type
    summary = {
        "sourceIp": info["identity"]["sourceIp"],
        "groups": groups,
        "groupPost": dict(group_post),
        "broadcast": dict(broadcast),
        "members": dict(members),
        "connectionCount": connections["connectionCount"],
        "after": after,
        "gone": gone,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:4])
