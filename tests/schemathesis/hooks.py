"""Schemathesis hooks for scripts/schemathesis (loaded via SCHEMATHESIS_HOOKS).

Two things keep a run testing the API rather than its authentication:

1. The admin keys of the run are spread over the requests. The admin API
   limits every key to its tier's requests per minute (600 for
   `enterprise`, with a minute's worth as the burst) and answers 429 past
   it. Schemathesis sends about 100 requests a second, so with one key
   most of a run would be documented 429s that test nothing behind the
   limit. scripts/schemathesis creates a pool of admin keys
   (SCHEMATHESIS_LEADEX_KEYS, a JSON file of {"id", "secret"}) and
   `before_call` sends each request with the next key of the pool as
   `Authorization: Bearer <secret>`. Any 429 is counted and written to
   SCHEMATHESIS_LEADEX_RATE_LIMITED at exit; the script fails the run
   when there was one (the pool was too small).

2. The pool's keys are kept alive. Schemathesis reuses ids it has seen in
   responses: it reads the keys' ids from `GET /v1/keys` and then revokes
   them (`DELETE /v1/keys/{id}`) or rotates them (`POST
   /v1/keys/{id}/rotate`). Revoking the key that makes the request is
   refused (409), but revoking another key of the pool is not, and
   rotating any key, including the calling one, with `overlap_seconds: 0`
   ends it at once: that is correct API behaviour (an operator may rotate
   a leaked key immediately), so the API keeps it and this hook keeps the
   run out of it. When a request that is not a read names a pool key's id
   in its path, the id is replaced by one that does not exist: the request
   is still sent and checked (it gets 404), and the key keeps working.
   Keys that Schemathesis creates itself are revoked and rotated as usual.
"""

import atexit
import itertools
import json
import os
import sys
import threading

import schemathesis

with open(os.environ["SCHEMATHESIS_LEADEX_KEYS"], encoding="utf-8") as f:
    KEYS = json.load(f)
PROTECTED_KEY_IDS = frozenset(k["id"] for k in KEYS)
RATE_LIMITED_FILE = os.environ["SCHEMATHESIS_LEADEX_RATE_LIMITED"]
# A well-formed key id that no key has (ids are 128 random bits).
ABSENT_KEY_ID = "k_" + "0" * 32
READS = {"GET", "HEAD", "OPTIONS"}

_next_key = itertools.cycle(KEYS)
_lock = threading.Lock()
_redirected = 0
_rate_limited = 0


@schemathesis.hook
def before_call(context, case, kwargs):
    global _redirected
    with _lock:
        key = next(_next_key)
    case.headers["Authorization"] = "Bearer " + key["secret"]
    if case.method.upper() in READS:
        return
    for name, value in list(case.path_parameters.items()):
        if value in PROTECTED_KEY_IDS:
            case.path_parameters[name] = ABSENT_KEY_ID
            with _lock:
                _redirected += 1


@schemathesis.hook
def after_call(context, case, response):
    global _rate_limited
    if response.status_code == 429:
        with _lock:
            _rate_limited += 1


@atexit.register
def _summary():
    with open(RATE_LIMITED_FILE, "w", encoding="utf-8") as f:
        f.write(f"{_rate_limited}\n")
    print(
        f"schemathesis hooks: requests spread over {len(KEYS)} admin keys; "
        f"{_rate_limited} answered 429; {_redirected} aimed at one of them "
        f"(revoke/rotate) were sent to {ABSENT_KEY_ID} instead",
        file=sys.stderr,
    )
