"""Several gateways on one database (SPEC 7): the election, the leader's mirror, members.

The announcement (NOTIFY on channel ``imss_fleet``, sent by the leader on its lock
connection after it published a release in its mirror and updated itself from it) carries
this JSON object (``announcement``):

    {"leader": "<node>", "term": <int>, "release": "<16 hex digits>",
     "mirror": "http://<IMSS_MIRROR>/activeupdate"}

``release`` is the first 16 hex digits of the SHA-256 of the release's server.ini; ``term``
grows by one on every takeover, so a listener ignores an announcement whose term is lower
than one it has seen. The same facts are in ``tb_fleet_leader`` (node, term, since,
mirror_address, release, announced) for a member that was not listening.
"""

from __future__ import annotations

import json

from imss_updater.database.advisory import CHANNEL

__all__ = ["CHANNEL", "announcement", "mirror_url"]
MIRROR_PATH = "/activeupdate"


def mirror_url(address: str) -> str:
    """``host:port`` (IMSS_MIRROR) -> the base URL members use as their update source."""
    return f"http://{address}{MIRROR_PATH}"


def announcement(leader: str, term: int, release: str, address: str) -> str:
    return json.dumps({"leader": leader, "term": term, "release": release,
                       "mirror": mirror_url(address)}, sort_keys=True)
