"""What the send pipeline is configured with (from the app config), and this process's claim owner id."""
from __future__ import annotations

import math
import os
import random
import secrets
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

from recovery.messaging import MAX_ATTEMPTS


_PROCESS_ID = f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"


def process_id() -> str:
    """This process's claim owner id (host:pid:random), new after a fork."""
    global _PROCESS_ID
    if f":{os.getpid()}:" not in _PROCESS_ID:
        _PROCESS_ID = f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"
    return _PROCESS_ID


@dataclass(frozen=True)
class DispatchSettings:
    """Built by from_config from the app config; the defaults are config.py's, never repeated here."""
    public_base_url: str
    schedules_dir: str
    lease: timedelta
    batch: int
    max_per_second: float  # per sender; 0 turns pacing off
    sender: str  # the pacing key: the From number or Messaging Service
    tick_seconds: float
    max_per_tick: int
    send_concurrency: int  # texts in flight at once (provider calls overlap)
    checkin_link_ttl: timedelta
    today_link_ttl: timedelta
    reply_window: timedelta  # how long an SMS check-in conversation stays open
    quiet_hours: tuple[str, str]  # when a row has no template to ask
    worker_id: str = field(default_factory=process_id)
    max_attempts: int = MAX_ATTEMPTS
    safety_quiet_start: str = "23:00"  # safety texts without a template to ask: quiet from then to 08:00
    rng: Any = field(default_factory=random.SystemRandom, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **over: Any) -> DispatchSettings:
        values = dict(
            public_base_url=str(config["PUBLIC_BASE_URL"]).rstrip("/"),
            schedules_dir=str(config["SCHEDULES_DIR"]),
            lease=timedelta(seconds=float(config["OUTBOX_LEASE_SECONDS"])),
            batch=int(config["OUTBOX_BATCH"]),
            max_per_second=float(config["SMS_MAX_PER_SECOND"]),
            sender=str(config.get("TWILIO_FROM_NUMBER") or config.get("TWILIO_MESSAGING_SERVICE_SID")
                       or config.get("SMS_BACKEND", "default")),
            tick_seconds=float(config["SCHEDULER_TICK_SECONDS"]),
            max_per_tick=int(config["OUTBOX_MAX_PER_TICK"]),
            send_concurrency=int(config["SMS_SEND_CONCURRENCY"]),
            checkin_link_ttl=timedelta(hours=float(config["CHECKIN_LINK_HOURS"])),
            today_link_ttl=timedelta(hours=float(config["TODAY_LINK_HOURS"])),
            reply_window=timedelta(hours=float(config["SMS_REPLY_HOURS"])),
            quiet_hours=tuple(config["QUIET_HOURS"]),
        )
        values.update(over)
        settings = cls(**values)
        if settings.max_per_second < 0 or not math.isfinite(settings.max_per_second):
            raise ValueError(f"SMS_MAX_PER_SECOND must be a number >= 0 (0 = no pacing), "
                             f"not {settings.max_per_second!r}")
        if settings.batch < 1:
            raise ValueError(f"OUTBOX_BATCH must be at least 1, not {settings.batch!r}")
        if settings.send_concurrency < 1:
            raise ValueError(f"SMS_SEND_CONCURRENCY must be at least 1, not {settings.send_concurrency!r}")
        if settings.lease <= timedelta(0):
            raise ValueError("OUTBOX_LEASE_SECONDS must be more than 0")
        return settings

    @property
    def pacing(self) -> bool:
        return self.max_per_second > 0

    def claim_size(self) -> int:
        if not self.pacing:
            return self.batch
        return max(1, min(self.batch, math.ceil(self.max_per_second * self.tick_seconds)))
