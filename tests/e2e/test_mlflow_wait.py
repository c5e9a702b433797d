"""`metrictap run --wait-upload` (and the config key upload.wait) returns
only once the upload is complete, so a script can read MLflow right after;
or once it has failed, saying so; the program's output and exit status are
unchanged either way."""
import json
import subprocess

import pytest

from conftest import BUILD, METRICTAP, compare, metrictap_env, run_dirs

TRAIN_OK = BUILD / "examples" / "train_ok"
TRAIN = [str(TRAIN_OK), "--epochs", "6", "--delay-ms", "1"]


def run(store, url, flags, **extra):
    env = metrictap_env(store, url, METRICTAP_UPLOAD_BACKOFF_MAX="1s", **extra)
    p = subprocess.run([str(METRICTAP), "run", "--project", "e2e-wait", *flags, "--", *TRAIN],
                       env=env, capture_output=True, text=True, timeout=180)
    direct = subprocess.run(TRAIN, capture_output=True, text=True, timeout=60)
    assert p.returncode == direct.returncode and p.stdout == direct.stdout
    (run_dir,) = run_dirs(store)
    return p, run_dir


@pytest.mark.parametrize("how", ["flag", "config"])
def test_run_returns_once_the_upload_is_complete(server, store, proxy, how):
    # the first requests fail: the upload ends seconds after the program
    proxy.inject("500", "log-batch", 3)
    proxy.inject("500", "runs/update", 2)
    flags, extra = (["--wait-upload"], {}) if how == "flag" else ([], {"METRICTAP_UPLOAD_WAIT": "true"})
    p, run_dir = run(store, f"http://127.0.0.1:{proxy.port}", flags, **extra)
    # no waiting here: it is all there the moment run returns
    problems, r = compare(server, run_dir)
    assert not problems, problems
    assert r["info"]["status"] == "FINISHED"
    assert proxy.count("log-batch", "500") == 3
    assert "metrictap: upload:" not in p.stderr


def test_run_returns_once_the_upload_has_failed_and_says_so(server, store, proxy):
    proxy.down()
    p, run_dir = run(store, f"http://127.0.0.1:{proxy.port}", ["--wait-upload"],
                     METRICTAP_UPLOAD_FLUSH_TIMEOUT="2s")
    assert "metrictap: upload: failed: connection refused; `metrictap sync` sends the rest" in p.stderr, p.stderr
    ends = [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()
            if '"upload_error"' in l and '"end"' in l]
    assert ends, "the failed flush left no event by the time run returned"
