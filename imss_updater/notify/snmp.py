"""SNMP notifications with pysnmp 7: the ONLY module importing pysnmp.

The variables are those of ``imss_updater/data/IMSS-UPDATER-MIB.txt`` (numeric OIDs below; a test
checks them against the MIB with net-snmp's snmptranslate). pysnmp's API is asyncio: each
send runs in a private event loop created and closed here, so the scheduler's worker
threads (or any thread, even one already running a loop) can call ``send``. An attempt is
bounded: ``SNMPTimeout`` per try, ``SNMPRetries`` more tries, and it ends at once when the
caller cancels it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
    usmAesCfb128Protocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import errind, rfc1902

from imss_updater.i18n import N_, Reason
from imss_updater.notify.config import ENTERPRISE_NUMBER, Receiver, TrapConfig
from imss_updater.notify.events import DeliveryError, DeliveryInterrupted

log = logging.getLogger(__name__)

OID = tuple[int, ...]
MIB_ROOT: OID = (1, 3, 6, 1, 4, 1, ENTERPRISE_NUMBER, 1)
SNMP_TRAP_OID: OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
NOTIFICATIONS: Mapping[str, OID] = {
    "update": (*MIB_ROOT, 0, 1),  # imssUpdaterUpdateEvent
    "stale": (*MIB_ROOT, 0, 2),  # imssUpdaterStaleEvent
    "test": (*MIB_ROOT, 0, 3),  # imssUpdaterTestEvent
    "node": (*MIB_ROOT, 0, 4),  # imssUpdaterNodeEvent
}
SCALARS: Mapping[str, OID] = {
    "group": (*MIB_ROOT, 1, 1),  # imssUpdaterEventGroup
    "outcome": (*MIB_ROOT, 1, 2),  # imssUpdaterEventOutcome
    "host": (*MIB_ROOT, 1, 3),  # imssUpdaterHost
    "time": (*MIB_ROOT, 1, 4),  # imssUpdaterEventTime
    "summary": (*MIB_ROOT, 1, 5),  # imssUpdaterSummary
}
COLUMNS: Mapping[str, OID] = {  # imssUpdaterComponentEntry columns, instance = index 1, 2, ...
    "id": (*MIB_ROOT, 1, 6, 1, 2),
    "name": (*MIB_ROOT, 1, 6, 1, 3),
    "version": (*MIB_ROOT, 1, 6, 1, 4),
    "outcome": (*MIB_ROOT, 1, 6, 1, 5),
    "reason": (*MIB_ROOT, 1, 6, 1, 6),
}
GROUP_VALUES: Mapping[str | None, int] = {None: 0, "pattern": 1, "engine": 2, "spam": 3}
OUTCOME_VALUES: Mapping[str, int] = {
    "success": 1, "failure": 2, "stale": 3, "fresh": 4, "test": 5, "recovered": 6,
    "down": 7, "up": 8,  # nodeDown, nodeUp
}
MAX_TEXT = 1024
_NO_RESPONSE = "No SNMP response received before timeout"


def varbinds(payload: Mapping[str, Any]) -> tuple[OID, list[tuple[OID, int | str]]]:
    """Given an event payload (``events.payload``), return the notification OID and the
    variables (OID, integer or text) in MIB order."""
    kind = str(payload.get("kind", "test"))
    bindings: list[tuple[OID, int | str]] = [
        ((*SCALARS["group"], 0), GROUP_VALUES.get(payload.get("group"), 0)),
        ((*SCALARS["outcome"], 0), OUTCOME_VALUES.get(str(payload.get("outcome")), 5)),
        ((*SCALARS["host"], 0), str(payload.get("host", ""))[:255]),
        ((*SCALARS["time"], 0), str(payload.get("time", ""))[:64]),
        ((*SCALARS["summary"], 0), str(payload.get("summary", ""))[:MAX_TEXT]),
    ]
    items: Sequence[Mapping[str, Any]] = payload.get("items") or []
    for index, item in enumerate(items, start=1):
        bindings += [
            ((*COLUMNS["id"], index), str(item.get("id", ""))[:64]),
            ((*COLUMNS["name"], index), str(item.get("name", ""))[:255]),
            ((*COLUMNS["version"], index), str(item.get("version", ""))[:64]),
            ((*COLUMNS["outcome"], index), OUTCOME_VALUES.get(str(item.get("outcome")), 2)),
            ((*COLUMNS["reason"], index), str(item.get("reason", ""))[:MAX_TEXT]),
        ]
    return NOTIFICATIONS.get(kind, NOTIFICATIONS["test"]), bindings


def send(
    config: TrapConfig,
    receiver: Receiver,
    payload: Mapping[str, Any],
    *,
    cancel: threading.Event | None = None,
) -> None:
    """Send the event ``payload`` to ``receiver`` as a trap (or an inform, acknowledged).

    Raise DeliveryError: transient when an inform got no answer in time or the name did
    not resolve, permanent for other SNMP errors; DeliveryInterrupted when ``cancel`` is
    set first. A trap is unacknowledged UDP: a receiver that is down goes unnoticed (use
    SNMPNotifyType=inform to notice it).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _run_private(config, receiver, payload, cancel)
        return
    # This thread already runs an event loop: use a thread of our own for ours.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_run_private, config, receiver, payload, cancel).result()


def attempt_seconds(config: TrapConfig) -> float:
    """The longest one attempt may take: every try's timeout, and a second to spare."""
    return config.timeout * (config.retries + 1) + 1.0


def _run_private(
    config: TrapConfig, receiver: Receiver, payload: Mapping[str, Any], cancel: threading.Event | None
) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_bounded(config, receiver, payload, cancel))
    finally:
        loop.close()


async def _bounded(
    config: TrapConfig, receiver: Receiver, payload: Mapping[str, Any], cancel: threading.Event | None
) -> None:
    """Run ``_send`` until it ends, its time is up, or ``cancel`` is set."""
    sending = asyncio.ensure_future(_send(config, receiver, payload))
    limit = attempt_seconds(config)
    deadline = asyncio.get_running_loop().time() + limit
    try:
        while not sending.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise DeliveryError(Reason(N_("%(where)s: no answer within %(seconds)s s"),
                                           {"where": str(receiver), "seconds": f"{limit:g}"}), transient=True)
            if cancel is not None and cancel.is_set():
                raise DeliveryInterrupted(Reason(N_("%(where)s: interrupted: the updater is stopping"),
                                                 {"where": str(receiver)}))
            await asyncio.wait({sending}, timeout=min(0.1, left))
        sending.result()
    finally:
        if not sending.done():
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sending


async def _send(config: TrapConfig, receiver: Receiver, payload: Mapping[str, Any]) -> None:
    engine = SnmpEngine(snmpEngineID=rfc1902.OctetString(config.engine_id))
    where = str(receiver)
    try:
        if config.version == "3":
            auth: CommunityData | UsmUserData = UsmUserData(
                config.user,
                authKey=config.auth_password,
                privKey=config.priv_password,
                authProtocol=usmHMACSHAAuthProtocol,
                privProtocol=usmAesCfb128Protocol,
            )
        else:
            auth = CommunityData(config.community, mpModel=1)  # noqa: S508  # v2c is the admin's choice
        target_class = Udp6TransportTarget if ":" in receiver.host else UdpTransportTarget
        try:
            target = await target_class.create(
                (receiver.host, receiver.port), timeout=config.timeout, retries=config.retries
            )
        except Exception as error:  # pysnmp raises PySnmpError for a name that does not resolve
            raise _failed(N_("%(where)s: %(error)s"), True, where=where, error=_first_line(error)) from error
        notification, bindings = varbinds(payload)
        objects = [ObjectType(ObjectIdentity(SNMP_TRAP_OID), rfc1902.ObjectIdentifier(notification))]
        for oid, value in bindings:
            if isinstance(value, int):
                objects.append(ObjectType(ObjectIdentity(oid), rfc1902.Integer32(value)))
            else:
                objects.append(ObjectType(ObjectIdentity(oid), rfc1902.OctetString(value.encode("utf-8"))))
        indication, status, index, _answer = await send_notification(
            engine, auth, target, ContextData(), config.notify_type, *objects, lookupMib=False
        )
        if indication:
            transient = isinstance(indication, errind.RequestTimedOut)
            if str(indication) == _NO_RESPONSE:  # pysnmp's words for an inform without answer
                raise _failed(N_("%(where)s: No SNMP response received before timeout"), transient,
                              where=where)
            raise _failed(N_("%(where)s: %(error)s"), transient, where=where, error=str(indication))
        if status:
            raise _failed(N_("%(where)s: %(status)s at variable %(index)s"), False, where=where,
                          status=str(status.prettyPrint()), index=str(index))
        await asyncio.sleep(0)  # let the transport flush the datagram before closing
        log.info("SNMP %s sent to %s", config.notify_type, where)
    finally:
        engine.close_dispatcher()


def _failed(msgid: str, transient: bool, **values: str) -> DeliveryError:
    """The DeliveryError saying ``msgid``; pysnmp's own words are parameters, as it said them."""
    return DeliveryError(Reason(msgid, values), transient=transient)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
