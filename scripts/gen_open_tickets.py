#!/usr/bin/env python3
"""Writes NDJSON of N tickets that stay open (no `resolved`): the memory
figure for open tickets (ARCHITECTURE.md, memory model).

usage: gen_open_tickets.py [N] [CUSTOMERS] > open.ndjson

Tickets are opened evenly over the two days before 2026-11-20T00:00:00Z,
one in two gets a `responded` an hour later, one in ten a `priority_changed`;
customers are spread over three segments and five zones, as the generator's.
"""
import json
import sys
from datetime import datetime, timedelta, timezone

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
customers = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
segments = ["enterprise", "business", "standard"]
zones = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney", "UTC"]
start = datetime(2026, 11, 18, tzinfo=timezone.utc)
span = timedelta(days=2)
out = sys.stdout
events = []
for i in range(n):
    at = start + span * i / n
    c = i % customers
    base = {
        "kind": "ticket",
        "customer_id": f"open-{c}",
        "segment": segments[c % 3],
        "timezone": zones[c % 5],
        "ticket_id": f"open-tkt-{i}",
    }
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    events.append((at, {**base, "event_id": f"open-{i}-o", "occurred_at": stamp(at),
                        "action": "opened", "priority": f"P{1 + i % 4}"}))
    if i % 2 == 0:
        t = at + timedelta(hours=1)
        events.append((t, {**base, "event_id": f"open-{i}-r", "occurred_at": stamp(t),
                           "action": "responded"}))
    if i % 10 == 0:
        t = at + timedelta(minutes=30)
        events.append((t, {**base, "event_id": f"open-{i}-p", "occurred_at": stamp(t),
                           "action": "priority_changed", "priority": "P1"}))
events.sort(key=lambda e: e[0])
for _, e in events:
    out.write(json.dumps(e, separators=(",", ":")) + "\n")
