"""Print issue 13's table: each misbehaviour of the city × (query, submit, token, check) → the
outcome and the time it took, with the station's default deadlines (3 s decisions, 10 s
submissions). Run: .venv/bin/python tests/city/city_misbehaviour_table.py"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support import city_dataset  # noqa: E402
from test_city_misbehaving import _config, add, outbox, record  # noqa: E402

from simulators.city_misbehaving import (  # noqa: E402
    MisbehavingCity,
    gbk,
    html,
    huge,
    integer_code,
    trickle,
    trickle_headers,
)
from station.app import cli  # noqa: E402
from station.city.client import CityClient  # noqa: E402
from station.city.lookup import LookupService  # noqa: E402
from station.city.sync import SyncWorker  # noqa: E402
from station.config import CityConfig, SyncConfig  # noqa: E402
from station.core.model import Reading  # noqa: E402
from station.errors import CityError  # noqa: E402
from station.store.db import Store  # noqa: E402

DECISION_S, SUBMIT_S = 3.0, 10.0
ROWS = {
    "HTML 403 page": html(403), "HTML 404 page": html(404), "GBK envelope": gbk(),
    "integer code": integer_code(), "trickle 1 B/0.3 s": trickle(0.3),
    "headers trickled": trickle_headers(0.3),
    "50 MB, Content-Length": huge(50 * 2**20, say_length=True),
    "50 MB, no length": huge(50 * 2**20, say_length=False),
}
PATHS = {"query": "/cylinders/query", "submit": "/fillings/submit", "token": "/auth/token"}


def client_of(city: MisbehavingCity, data: dict) -> CityClient:
    cred = data["credentials"][0]
    return CityClient(CityConfig(base_url=city.url, app_key=cred["app_key"],
                                 app_secret=cred["app_secret"], decision_deadline_s=DECISION_S),
                      cred["unit_code"])


def cell(fn) -> str:
    start = time.monotonic()
    out = fn()
    return f"{out} ({time.monotonic() - start:.2f} s)"


def query(city: MisbehavingCity, data: dict, folder: Path) -> str:
    client = client_of(city, data)
    client.token()
    city.behave[PATHS["query"]] = ROWS[city.row]
    lookups = LookupService(client, Store(str(folder / "q.db")), ThreadPoolExecutor(1),
                            DECISION_S)
    unknown = Reading(raw="NO-SUCH", kind="info_code", value="NO-SUCH", reader="s1")
    answer = asyncio.run(lookups.lookup(unknown))
    client.close()
    return f"{answer.lookup.outcome}/{answer.lookup.source}"


def submit(city: MisbehavingCity, data: dict, folder: Path) -> str:
    client = client_of(city, data)
    client.token()
    city.behave[PATHS["submit"]] = ROWS[city.row]
    store = Store(str(folder / "s.db"))
    rid = add(store, record())
    SyncWorker(str(folder / "s.db"), client, SyncConfig(rate_per_s=0, submit_timeout_s=SUBMIT_S),
               rng=random.Random(1)).step(store)
    client.close()
    return f"record {outbox(store)[rid]['state']}"


def token(city: MisbehavingCity, data: dict, folder: Path) -> str:
    client = client_of(city, data)
    city.behave[PATHS["token"]] = ROWS[city.row]
    try:
        client.token()
        return "token"
    except CityError as err:
        return "transient" if err.transient else "refused credentials"
    finally:
        client.close()


def check(city: MisbehavingCity, data: dict, folder: Path) -> str:
    city.behave[PATHS["query"]] = city.behave[PATHS["token"]] = ROWS[city.row]
    config = _config(folder, city.url)
    text = config.read_text(encoding="utf-8").replace("decision_deadline_s = 0.3",
                                                       f"decision_deadline_s = {DECISION_S}")
    config.write_text(text, encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.main(["check", "--config", str(config), "NO-SUCH"])
    verdict = re.search(r"^verdict:.*?(PERMIT|REFUSE\s+\w+)", out.getvalue(), re.MULTILINE)
    return " ".join(verdict.group(1).split()) if verdict else "?"


def main() -> None:
    data = city_dataset()
    print(f"| misbehaviour | query (lookup, {DECISION_S:g} s) | submit (sync step, "
          f"{SUBMIT_S:g} s) | token ({DECISION_S:g} s) | station check ({DECISION_S:g} s) |")
    print("|---|---|---|---|---|")
    for row in ROWS:
        cells = []
        for fn in (query, submit, token, check):
            with MisbehavingCity(data) as city, tempfile.TemporaryDirectory() as tmp:
                city.row = row
                cells.append(cell(lambda: fn(city, data, Path(tmp))))  # noqa: B023
        print(f"| {row} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
