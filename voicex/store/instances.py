"""Server process instances: which process owns a live call, and whether that process is known to be dead.

Every ``voicex serve`` process registers itself once (``server_instances``, ``_id`` = :data:`INSTANCE_ID`) and
renews a heartbeat lease; calls carry the id of the process running them (``calls.serverId``). This lets a
restarted server reclaim the calls of the process it replaced at once instead of after the 30 s call lease:

- on the same machine (same boot and pid namespace) a process is dead when its pid is gone, a zombie, or
  now belongs to a process that started at another time (pid reuse). That is certain, so no wait is needed;
- anywhere else, a process is dead when its heartbeat lease expired, like the call lease.

A live process is never declared dead by the first rule; a stalled one can be by the second, exactly as by
the call lease, and ``finalize_call`` lets it still record the call it was running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from pathlib import Path

from bson import ObjectId

from voicex.store.db import Database, Document

INSTANCE_ID = ObjectId()  # this process; shared by every app it runs (they run the same calls' fate)
HEARTBEAT_SEC = 5.0
INSTANCE_LEASE = dt.timedelta(seconds=30)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine_key() -> str | None:
    """Boot id + pid namespace: pids are comparable only between processes that share both (Linux only)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    with contextlib.suppress(OSError):
        namespace = os.readlink("/proc/self/ns/pid")
        return f"{boot}/{namespace}" if boot else None
    return None


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, from /proc/<pid>/stat."""
    text = _read(f"/proc/{pid}/stat")
    if text is None or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def process_alive(pid: int, started: str | None) -> bool:
    """Whether ``pid`` still runs the process that started at ``started`` (zombies count as dead)."""
    stat = _stat(pid)
    if stat is None:
        return False
    state, ticks = stat
    return state not in ("Z", "X") and (started is None or ticks == started)


def identity(now: dt.datetime) -> Document:
    """This process's registry document, heartbeat fields included."""
    stat = _stat(os.getpid())
    return {
        "host": socket.gethostname(),
        "machine": machine_key(),
        "pid": os.getpid(),
        "started": stat[1] if stat else None,
        "heartbeatAt": now,
        "leaseExpiresAt": now + INSTANCE_LEASE,
    }


async def heartbeat(db: Database, now: dt.datetime) -> None:
    """Register or renew this process (an upsert, so a process declared dead during a stall comes back)."""
    await db.server_instances.update_one({"_id": INSTANCE_ID}, {"$set": identity(now)}, upsert=True)


async def retire(db: Database, now: dt.datetime) -> None:
    """A clean stop: any call this process leaves behind may be reclaimed at once."""
    await db.server_instances.update_one({"_id": INSTANCE_ID}, {"$set": {"leaseExpiresAt": now}})


def is_dead(instance: Document, now: dt.datetime, machine: str | None) -> bool:
    if instance["_id"] == INSTANCE_ID:
        return False
    expires = instance.get("leaseExpiresAt")
    if expires is None or expires < now:
        return True
    same_machine = machine is not None and instance.get("machine") == machine
    return same_machine and not process_alive(int(instance["pid"]), instance.get("started"))


async def dead_instances(db: Database, now: dt.datetime) -> list[Document]:
    """Registered processes known to be dead (never this one)."""
    machine = machine_key()
    return [i async for i in db.server_instances.find({}) if is_dead(i, now, machine)]


async def forget(db: Database, instance: Document) -> None:
    """Drop a dead process's entry once its calls are reclaimed (unless it renewed meanwhile)."""
    await db.server_instances.delete_one({"_id": instance["_id"], "heartbeatAt": instance.get("heartbeatAt")})
