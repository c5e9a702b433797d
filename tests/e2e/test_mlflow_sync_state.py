"""Sync state per server: a run synced to one MLflow server and then to
another arrives whole at both; artifacts are not sent again when nothing
changed (their mtimes compared to the nanosecond); a tag removed with
`metrictap tag RUN -x` is removed in MLflow too."""
import json
import os
import subprocess
from pathlib import Path

from conftest import METRICTAP, compare, metrictap_env
from test_mlflow_upload import write_run


def sync(store, url, *args):
    return subprocess.run([str(METRICTAP), "sync", *(args or ["--all"])],
                          env=metrictap_env(store, url), capture_output=True, text=True, timeout=120)


def test_sync_to_a_second_server_sends_everything_there(server, append_server, store, proxy,
                                                        append_proxy):
    hand = write_run(Path(store) / "runs" / "e2e-hand" / "twosrv01", "twosrv01", rows=600)
    a = f"http://127.0.0.1:{proxy.port}"
    b = f"http://127.0.0.1:{append_proxy.port}/"  # a trailing slash is the same server
    r = sync(store, a)
    assert r.returncode == 0, r.stderr
    problems, _ = compare(server, hand)
    assert not problems, problems
    r = sync(store, b)
    assert r.returncode == 0, r.stderr
    problems, mr = compare(append_server, hand)
    assert not problems, problems
    assert mr["info"]["status"] == "FINISHED"
    assert append_proxy.count("artifacts/output.log") == 1
    # each server's cursor is kept: back to the first, nothing is sent twice
    proxy.clear()
    r = sync(store, a)
    assert r.returncode == 0, r.stderr
    assert proxy.count("log-batch") == 0 and proxy.count("runs/create") == 0
    problems, _ = compare(server, hand)
    assert not problems, problems
    append_proxy.clear()
    r = sync(store, b.rstrip("/"))
    assert r.returncode == 0, r.stderr
    assert append_proxy.count("log-batch") == 0 and append_proxy.count("runs/create") == 0
    cur = json.loads((hand / "upload" / "mlflow.json").read_text())
    assert cur["target"].startswith(b.rstrip("/") + " ")
    assert a + " experiment e2e-hand" in cur["others"]


def test_artifacts_are_not_sent_again_when_unchanged(server, store, proxy):
    hand = write_run(Path(store) / "runs" / "e2e-hand" / "mtime001", "mtime001", rows=50)
    # an mtime whose 15-digit print is within cJSON's tolerance of the
    # double, but not equal to it: stored as one double it never matched
    ns = 1700000000_123450_200
    for name in ("output.log", "run.json"):
        os.utime(hand / name, ns=(ns, ns))
    url = f"http://127.0.0.1:{proxy.port}"
    r = sync(store, url)
    assert r.returncode == 0, r.stderr
    assert proxy.count("artifacts/output.log") == 1 and proxy.count("artifacts/run.json") == 1
    for _ in range(2):
        proxy.clear()
        r = sync(store, url)
        assert r.returncode == 0, r.stderr
        assert proxy.count("mlflow-artifacts") == 0, proxy.seen
    # a changed file goes again
    with open(hand / "output.log", "a") as f:
        f.write("more\n")
    r = sync(store, url)
    assert r.returncode == 0, r.stderr
    assert proxy.count("artifacts/output.log") == 1


def test_a_removed_tag_is_removed_in_mlflow(server, store, proxy):
    hand = write_run(Path(store) / "runs" / "e2e-hand" / "untag001", "untag001", rows=20)
    url = f"http://127.0.0.1:{proxy.port}"
    r = sync(store, url)
    assert r.returncode == 0, r.stderr
    _, mr = compare(server, hand)
    tags = {t["key"]: t["value"] for t in mr["data"]["tags"]}
    assert tags["sweep"] == "true" and tags["metrictap.tags"] == "baseline,sweep"
    env = metrictap_env(store)
    subprocess.run([str(METRICTAP), "reindex"], env=env, capture_output=True, check=True, timeout=60)
    t = subprocess.run([str(METRICTAP), "tag", "untag001", "-sweep", "+best"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert t.returncode == 0, t.stderr
    r = sync(store, url)
    assert r.returncode == 0, r.stderr
    _, mr = compare(server, hand)
    tags = {t["key"]: t["value"] for t in mr["data"]["tags"]}
    assert "sweep" not in tags
    assert tags["best"] == "true" and tags["baseline"] == "true"
    assert tags["metrictap.tags"] == "baseline,best"
    assert proxy.count("runs/delete-tag") == 1
