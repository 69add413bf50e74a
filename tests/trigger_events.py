"""Run a trigger the way the triggerer does, up to its first event."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def first_event(trigger: Any, timeout: float = 30) -> dict[str, Any]:
    """The first event's payload; the generator is closed afterwards, as the triggerer does."""
    events = trigger.run()
    try:
        event = await asyncio.wait_for(anext(events), timeout)
    finally:
        await events.aclose()
    json.dumps(event.payload)  # the event must survive being stored and sent to the worker
    return event.payload


def run_trigger(trigger: Any, timeout: float = 30) -> dict[str, Any]:
    return asyncio.run(first_event(trigger, timeout))
