"""Bounds of the numbers a client may send, checked at the edge (pydantic) and nowhere looser.

An unbounded number is stored fine and breaks every later reader: a robot `duration` of 10^40 days
gave an expiry no timestamp formatter takes, and a `storage_limit` of 10^40 exceeds what DynamoDB
stores (38 digits), so `GET /projects`, `/robots`, `/statistics` and `/search` answered 500 for
everyone. Each number is therefore held to what its readers accept.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Harbor's ids are int64.
MAX_ID = 2**63 - 1
# Bytes of a quota: -1 is unlimited; 2^62 (4 EiB) is far past any store and far inside int64.
MAX_STORAGE_BYTES = 2**62
# Days a robot's secret stays valid: -1 is never; a century, like `robot_token_duration`.
MAX_DURATION_DAYS = 365 * 100
# Seconds since the epoch: the last second of year 9999, the last one RFC 3339 can write.
MAX_EPOCH = 253_402_300_799

Id = Annotated[int, Field(ge=0, le=MAX_ID)]
StorageLimit = Annotated[int, Field(ge=-1, le=MAX_STORAGE_BYTES)]
DurationDays = Annotated[int, Field(ge=-1, le=MAX_DURATION_DAYS)]
Epoch = Annotated[int, Field(ge=0, le=MAX_EPOCH)]
