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
    public_base_url: str
    schedules_dir: str
    worker_id: str = field(default_factory=process_id)
    lease: timedelta = timedelta(seconds=300)
    batch: int = 20
    max_per_second: float = 1.0  # per sender; 0 turns pacing off
    sender: str = "default"  # the pacing key: the From number or Messaging Service
    tick_seconds: float = 5.0
    max_per_tick: int = 500
    max_attempts: int = MAX_ATTEMPTS
    send_concurrency: int = 4  # texts in flight at once (provider calls overlap)
    checkin_link_ttl: timedelta = timedelta(hours=24)
    today_link_ttl: timedelta = timedelta(hours=72)
    reply_window: timedelta = timedelta(hours=24)  # how long an SMS check-in conversation stays open
    quiet_hours: tuple[str, str] = ("21:00", "08:00")  # when a row has no template to ask
    safety_quiet_start: str = "23:00"  # safety texts without a template to ask: quiet from then to 08:00
    rng: Any = field(default_factory=random.SystemRandom, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **over: Any) -> DispatchSettings:
        values = dict(
            public_base_url=str(config["PUBLIC_BASE_URL"]).rstrip("/"),
            schedules_dir=str(config["SCHEDULES_DIR"]),
            lease=timedelta(seconds=float(config.get("OUTBOX_LEASE_SECONDS", 300))),
            batch=int(config.get("OUTBOX_BATCH", 20)),
            max_per_second=float(config.get("SMS_MAX_PER_SECOND", 1)),
            sender=str(config.get("TWILIO_FROM_NUMBER") or config.get("TWILIO_MESSAGING_SERVICE_SID")
                       or config.get("SMS_BACKEND", "default")),
            tick_seconds=float(config.get("SCHEDULER_TICK_SECONDS", 5)),
            max_per_tick=int(config.get("OUTBOX_MAX_PER_TICK", 500)),
            send_concurrency=int(config.get("SMS_SEND_CONCURRENCY", 4)),
            checkin_link_ttl=timedelta(hours=float(config.get("CHECKIN_LINK_HOURS", 24))),
            today_link_ttl=timedelta(hours=float(config.get("TODAY_LINK_HOURS", 72))),
            reply_window=timedelta(hours=float(config.get("SMS_REPLY_HOURS", 24))),
            quiet_hours=tuple(config.get("QUIET_HOURS", ("21:00", "08:00"))),
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
