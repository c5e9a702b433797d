"""`metrictap import` and `metrictap parse` on logs (no program runs)."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "build" / "metrictap"
GOLDEN = ROOT / "tests" / "golden"


def cli(tmp, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICTAP_", "WANDB_"))}
    env["HOME"] = str(tmp)
    env["METRICTAP_DIR"] = str(tmp / "store")
    p = subprocess.run([str(CLI)] + list(args), cwd=tmp, env=env, capture_output=True,
                       text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_import_makes_a_finished_run_with_log_times(tmp_path):
    case = GOLDEN / "custom_rules"
    p = cli(tmp_path, "import", "-c", str(case / "config.yaml"), "--project", "old",
            str(case / "input.txt"))
    run_id = p.stdout.split(" as run ")[1].split()[0]
    run = tmp_path / "store" / "runs" / "old" / run_id
    meta = json.loads((run / "run.json").read_text())
    assert meta["state"] == "finished"
    assert meta["start_time"] == 1709294400  # 2024-03-01T12:00:00Z, from the log
    assert meta["end_time"] == 1709294403
    assert meta["config"] == {"lr": 0.1, "opt": "adam"}
    assert "warmup" in meta["tags"]
    rows = [json.loads(l) for l in (run / "history.jsonl").read_text().splitlines()]
    assert [r["_runtime"] for r in rows] == [1.5, 3.0]
    assert rows[1]["status"] == "diverging"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["acc"] == 75.625 and summary["done"] is True
    assert (run / "output.log").read_text() == (case / "input.txt").read_text()
    ls = cli(tmp_path, "ls", "--project", "old").stdout
    assert run_id in ls


def test_parse_reads_stdin_and_prints_a_table_when_asked(tmp_path):
    env_in = "epoch 1\nloss: 0.5\nloss: 0.25\n"
    p = subprocess.run([str(CLI), "parse", "--table", "-"], input=env_in, text=True,
                       capture_output=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["_step", "epoch", "loss"]
    assert lines[1].split() == ["0", "1", "0.5"]
    assert lines[2].split() == ["1", "1", "0.25"]


def test_parse_rejects_unknown_keys_with_the_valid_ones(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("rules:\n  - preset: keyvalue\nmetrix:\n  loss: {summary: min}\n")
    p = cli(tmp_path, "parse", "-c", str(cfg), "/dev/null", check=False)
    assert p.returncode == 2
    assert "r.yaml:3:1: unknown key \"metrix\"; valid keys: dir, project" in p.stderr


def test_run_with_a_bad_regex_runs_untracked_or_refuses_under_strict(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("rules:\n  - pattern: '(?<loss>\\d+'\n")
    p = cli(tmp_path, "run", "-c", str(cfg), "--", "echo", "hello", check=False)
    assert p.returncode == 0 and p.stdout == "hello\n"
    assert "bad.yaml:2:14: rules[0]: pattern: bad regular expression" in p.stderr
    assert "this run is not tracked" in p.stderr
    assert not (tmp_path / "store" / "runs").exists()
    p = cli(tmp_path, "run", "--strict", "-c", str(cfg), "--", "echo", "hello", check=False)
    assert p.returncode == 125 and p.stdout == ""
