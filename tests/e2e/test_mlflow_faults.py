"""Uploads that never stall: a path that fails a fixed share of all requests
(every 3rd answered 500, a random 20% answered 500, a random 20% of the
connections closed before or after the request reached the server) still
gets every point to MLflow exactly once, in bounded time.  The appending
(file) store is used: the sqlite store merges a doubled point."""
import json
import subprocess
from pathlib import Path

import pytest

from conftest import METRICTAP, compare, metrictap_env

KEYS = 40


def write_wide_run(run_dir, rid, rows=30):
    """A finished run whose rows carry KEYS metrics each (rows * KEYS points)."""
    run_dir.mkdir(parents=True)
    run = {"id": rid, "project": "e2e-faults", "name": f"wide-{rid}", "state": "finished",
           "start_time": 1700000000.25, "end_time": 1700000100.5, "runtime": 100.25,
           "exit_code": 0, "signal": None, "command": ["./train"], "program": "train",
           "cwd": "/", "host": "h", "user": "u", "config": {"lr": 0.1}}
    (run_dir / "run.json").write_text(json.dumps(run))
    with open(run_dir / "history.jsonl", "w") as f:
        for i in range(rows):
            row = {"_step": i, "_runtime": i * 0.5, "_timestamp": 1700000000.25 + i * 0.5}
            for k in range(KEYS):
                row[f"m{k:02d}"] = k + i / 1000.0
            f.write(json.dumps(row) + "\n")
    (run_dir / "output.log").write_text("done\n")
    return run_dir


FAULTS = {
    "every_3rd_500": lambda p: p.fail_every(3, "500"),
    "random_20pct_500": lambda p: p.fail_random(0.2, ["500"], seed=7),
    "random_20pct_closed_before_and_after": lambda p: p.fail_random(0.2, ["drop", "close"], seed=11),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_point_arrives_once_through_a_failing_path(append_server, store, append_proxy, fault):
    proxy, server = append_proxy, append_server
    hand = write_wide_run(Path(store) / "runs" / "e2e-faults" / f"wide{len(fault):04d}",
                          f"wide{len(fault):04d}")
    FAULTS[fault](proxy)
    env = metrictap_env(store, f"http://127.0.0.1:{proxy.port}",
                        METRICTAP_UPLOAD_BACKOFF_MAX="1s", METRICTAP_UPLOAD_SYNC_TIMEOUT="240s")
    # generous bound: the livelock this guards against never finished at all
    r = subprocess.run([str(METRICTAP), "sync", "--all"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    failed = sum(proxy.count("", a) for a in ("500", "drop", "close"))
    assert failed >= 5, "the schedule did not fail requests"
    proxy.clear()
    problems, mr = compare(server, hand)
    assert not problems, problems
    assert mr["info"]["status"] == "FINISHED"
    assert sum(1 for m in mr["data"]["metrics"]) == KEYS
