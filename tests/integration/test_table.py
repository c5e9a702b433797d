"""The runs table and run views: ls (columns, filters, sort, json, csv, width),
show (sections and charts), tag/rename/rm, reindex and self-repair, and
twenty runs writing one store at once."""
import csv
import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CLI, EXAMPLES, clean_env, run_wrapped


def cli(store, *args, env=None, check=True, stdin=subprocess.DEVNULL):
    e = clean_env({"METRICTAP_DIR": str(store), **(env or {})})
    p = subprocess.run([str(CLI), *args], env=e, capture_output=True, text=True, timeout=120,
                       stdin=stdin)
    if check and p.returncode != 0:
        raise AssertionError(f"metrictap {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


def write_run(store, project, rid, *, name=None, tags=(), state="finished", start=1.7e9,
              config=None, summary=None, history=None, metrics=None, group=None):
    """A run directory as the agent leaves it (only what the table reads)."""
    d = Path(store) / "runs" / project / rid
    d.mkdir(parents=True)
    run = {"id": rid, "project": project, "name": name or f"run-{rid}", "group": group,
           "job_type": None, "notes": None, "tags": list(tags), "state": state,
           "start_time": start, "end_time": start + 60, "runtime": 60.0,
           "exit_code": 0 if state == "finished" else 1, "signal": None,
           "config": config or {}}
    if metrics:
        run["metrics"] = metrics
    (d / "run.json").write_text(json.dumps(run, indent="\t"))
    (d / "summary.json").write_text(json.dumps(summary or {}))
    (d / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history or []))
    return d


@pytest.fixture
def store(tmp_path):
    s = tmp_path / "store"
    s.mkdir()
    runs = [
        ("aaaa0001", ["baseline"], 0.95, 0.001, "adam", "finished"),
        ("aaaa0002", ["baseline", "fp16"], 0.85, 0.001, "sgd", "finished"),
        ("aaaa0003", ["sweep"], 0.97, 0.1, "adam", "failed"),
        ("aaaa0004", ["baseline"], "NaN", 0.005, "adam", "finished"),
        ("aaaa0005", [], 0.91, 0.0001, "lamb", "finished"),
    ]
    for i, (rid, tags, acc, lr, optim, state) in enumerate(runs):
        write_run(s, "mnist", rid, tags=tags, state=state, start=1.7e9 + i * 100,
                  config={"lr": lr, "optim": {"name": optim}, "epochs": 10},
                  summary={"val_acc": acc, "loss": 0.1 * (i + 1), "_step": 9},
                  group="g1" if i < 2 else None)
    write_run(s, "other", "bbbb0001", tags=["baseline"], summary={"val_acc": 0.99},
              config={"lr": 0.001}, start=1.7e9 + 1000)
    return s


def ids(p):
    return [r["id"] for r in json.loads(p.stdout)]


def test_ls_filters_tags_and_sort(store):
    q = ["ls", "--project", "mnist", "--json"]
    assert ids(cli(store, *q)) == ["aaaa0005", "aaaa0004", "aaaa0003", "aaaa0002", "aaaa0001"]
    assert ids(cli(store, *q, "--tag", "baseline")) == ["aaaa0004", "aaaa0002", "aaaa0001"]
    assert ids(cli(store, *q, "--tag", "baseline", "--tag", "fp16")) == ["aaaa0002"]
    assert ids(cli(store, *q, "--filter", "summary.val_acc > 0.9 and config.lr < 0.01")) == \
        ["aaaa0005", "aaaa0001"]
    assert ids(cli(store, *q, "--filter", 'config.optim.name = "adam" and not state = "failed"')) \
        == ["aaaa0004", "aaaa0001"]
    assert ids(cli(store, *q, "--filter", 'summary.val_acc = "NaN"')) == ["aaaa0004"]
    assert ids(cli(store, *q, "--group", "g1")) == ["aaaa0002", "aaaa0001"]
    assert ids(cli(store, *q, "--state", "failed")) == ["aaaa0003"]
    # Sorted by a summary value, NaN (text) after the numbers either way round.
    assert ids(cli(store, *q, "--sort", "-summary.val_acc")) == \
        ["aaaa0003", "aaaa0001", "aaaa0005", "aaaa0002", "aaaa0004"]
    assert ids(cli(store, *q, "--sort", "summary.val_acc", "--limit", "2")) == \
        ["aaaa0002", "aaaa0005"]
    # Every project without --project.
    assert ids(cli(store, "ls", "--json", "--tag", "baseline"))[0] == "bbbb0001"


def test_ls_scan_agrees_with_the_index(store):
    for f in ["summary.val_acc > 0.9", "not config.lr < 0.01 or tags = \"fp16\"",
              'name ~ "run-aaaa000[1-3]"']:
        q = ["ls", "--csv", "--filter", f, "--columns", "summary.val_acc,config.lr"]
        a, b = cli(store, *q).stdout, cli(store, *q, "--scan").stdout
        assert a == b and a.count("\n") > 1, f


def test_ls_json_and_csv_carry_values(store):
    rows = json.loads(cli(store, "ls", "--project", "mnist", "--json", "--columns",
                          "summary.val_acc,config.optim.name").stdout)
    r = next(r for r in rows if r["id"] == "aaaa0001")
    assert r["config"]["optim"]["name"] == "adam"
    assert r["summary"]["val_acc"] == 0.95
    assert r["columns"] == {"summary.val_acc": 0.95, "config.optim.name": "adam"}
    assert r["tags"] == ["baseline"] and r["group"] == "g1" and r["state"] == "finished"
    out = cli(store, "ls", "--project", "mnist", "--csv", "--columns", "summary.val_acc").stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert [t["id"] for t in table][0] == "aaaa0005"
    by_id = {t["id"]: t for t in table}
    assert by_id["aaaa0002"]["tags"] == "baseline,fp16"
    assert by_id["aaaa0004"]["summary.val_acc"] == "NaN"
    assert by_id["aaaa0005"]["summary.val_acc"] == "0.91"


def test_ls_table_fits_the_terminal_and_marks_cuts(store):
    write_run(store, "mnist", "cccc0001", name="a-very-long-run-name-" + "x" * 60,
              tags=["t" * 40], summary={"val_acc": 0.123456789})
    wide = cli(store, "ls", "--columns", "summary.val_acc", env={"COLUMNS": "300"}).stdout
    assert "x" * 60 in wide and "\u2026" not in wide
    narrow = cli(store, "ls", "--columns", "summary.val_acc", env={"COLUMNS": "100"}).stdout
    for line in narrow.splitlines():
        assert len(line) <= 100, line
    assert "\u2026" in narrow            # a cut cell says so
    assert "cccc0001" in narrow and "0.123457" in narrow  # ids and numbers are never cut
    # Piped without COLUMNS: nothing is cut.
    assert "x" * 60 in cli(store, "ls").stdout


def test_bad_filter_points_at_the_column(store):
    p = cli(store, "ls", "--filter", "summary.val_acc > and config.lr < 0.01", check=False)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert 'expected a value after ">"' in lines[0]
    assert lines[1] == "  summary.val_acc > and config.lr < 0.01"
    assert lines[2] == "  " + " " * 18 + "^"
    p = cli(store, "ls", "--filter", "bogus.col > 1", check=False)
    assert p.returncode == 2 and "unknown column" in p.stderr
    p = cli(store, "ls", "--sort", "nope", check=False)
    assert p.returncode == 2 and "summary.KEY" in p.stderr


def test_self_repair_when_run_dirs_appear_and_vanish(store):
    assert len(ids(cli(store, "ls", "--json"))) == 6
    # A run copied in from elsewhere (its project dir's mtime moves).
    write_run(store, "mnist", "dddd0001", tags=["new"], summary={"val_acc": 0.5})
    assert ids(cli(store, "ls", "--json", "--tag", "new")) == ["dddd0001"]
    # A row left "running" (the agent's last put was lost) follows run.json.
    d = write_run(store, "mnist", "dddd0002", state="running", summary={"val_acc": 0.1})
    assert json.loads(cli(store, "ls", "--json", "--filter", 'id = "dddd0002"').stdout)[0][
        "state"] == "running"
    run = json.loads((d / "run.json").read_text())
    run["state"] = "finished"
    (d / "run.json").write_text(json.dumps(run))
    (d / "summary.json").write_text('{"val_acc": 0.7}')
    row = json.loads(cli(store, "ls", "--json", "--filter", 'id = "dddd0002"').stdout)[0]
    assert row["state"] == "finished" and row["summary"] == {"val_acc": 0.7}
    shutil.rmtree(d)
    # A run deleted by hand.
    shutil.rmtree(store / "runs" / "mnist" / "aaaa0003")
    assert "aaaa0003" not in ids(cli(store, "ls", "--json"))
    # A whole project deleted by hand.
    shutil.rmtree(store / "runs" / "other")
    assert "bbbb0001" not in ids(cli(store, "ls", "--json"))
    # The index lost: rebuilt from the run directories.
    for f in store.glob("index.sqlite*"):
        f.unlink()
    assert sorted(ids(cli(store, "ls", "--json"))) == \
        ["aaaa0001", "aaaa0002", "aaaa0004", "aaaa0005", "dddd0001"]
    # An index of the skeleton's layout is replaced and refilled.
    for f in store.glob("index.sqlite*"):
        f.unlink()
    db = sqlite3.connect(store / "index.sqlite")
    db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, project TEXT)")
    db.execute("INSERT INTO runs VALUES ('zzzz', 'mnist')")
    db.commit()
    db.close()
    assert len(ids(cli(store, "ls", "--json"))) == 5


def test_reindex_rebuilds_the_same_rows(store):
    before = cli(store, "ls", "--csv", "--columns", "summary.val_acc,config.lr").stdout
    db = sqlite3.connect(store / "index.sqlite")
    db.execute("DELETE FROM kv")
    db.execute("UPDATE runs SET name = 'wrong'")
    db.commit()
    db.close()
    # the emptied index has no summary keys: said, exit 1, the rows still printed
    damaged = cli(store, "ls", "--csv", "--columns", "summary.val_acc", check=False)
    assert damaged.returncode == 1 and "no run has summary.val_acc" in damaged.stderr
    assert damaged.stdout != before
    p = cli(store, "reindex")
    assert "indexed 6 runs in 2 projects" in p.stderr
    assert cli(store, "ls", "--csv", "--columns", "summary.val_acc,config.lr").stdout == before


def test_tag_rename_rm_change_run_json_and_the_index(store):
    d = store / "runs" / "mnist" / "aaaa0002"
    p = cli(store, "tag", "aaaa0002", "+best", "-fp16", "extra")
    assert "baseline,best,extra" in p.stdout
    run = json.loads((d / "run.json").read_text())
    assert run["tags"] == ["baseline", "best", "extra"]
    assert stat.S_IMODE((d / "run.json").stat().st_mode) == 0o600
    assert not list(d.glob(".run.json*"))  # the temp file is gone
    assert ids(cli(store, "ls", "--json", "--tag", "best")) == ["aaaa0002"]
    assert ids(cli(store, "ls", "--json", "--tag", "fp16")) == []
    cli(store, "rename", "aaaa0002", "the best one")
    assert json.loads((d / "run.json").read_text())["name"] == "the best one"
    assert json.loads(cli(store, "ls", "--json", "--filter",
                          'name = "the best one"').stdout)[0]["id"] == "aaaa0002"
    # The edits survive a rebuild: they are in the run directory.
    cli(store, "reindex")
    assert ids(cli(store, "ls", "--json", "--tag", "best")) == ["aaaa0002"]
    # rm asks; with no terminal and no --yes it removes nothing.
    p = cli(store, "rm", "aaaa0002", check=False)
    assert p.returncode != 0 and "without --yes" in p.stderr and d.exists()
    p = cli(store, "rm", "aaaa0002", "aaaa0005", "--yes")
    assert "removed aaaa0002" in p.stdout and "removed aaaa0005" in p.stdout
    assert not d.exists() and not (store / "runs" / "mnist" / "aaaa0005").exists()
    assert not list((store / "runs" / "mnist").glob(".rm-*"))
    assert "aaaa0002" not in ids(cli(store, "ls", "--json"))
    p = cli(store, "rm", "nosuch", "--yes", check=False)
    assert p.returncode != 0 and "no run nosuch" in p.stderr


def test_show_sections_and_charts(store):
    hist = [{"_step": s, "_runtime": s * 1.0, "_timestamp": 1.7e9 + s, "loss": 2.0 / (s + 1),
             "acc": s / 20} for s in range(20)]
    for e in range(1, 5):
        hist[e * 5 - 1].update({"epoch": e, "val_acc": 0.5 + e / 10})
    hist[7]["loss"] = "NaN"
    d = write_run(store, "mnist", "eeee0001", config={"lr": 0.01, "net": {"depth": 18}},
                  summary={"loss": 0.1, "val_acc": 0.9}, history=hist,
                  metrics={"val_acc": {"step_metric": "epoch"}})
    (d / "output.log").write_text("".join(f"line {i}\n" for i in range(30)))
    (d / "system.jsonl").write_text(
        '{"_timestamp":1,"cpu":10,"gpu.0.temp":50}\n{"_timestamp":2,"cpu":30,"gpu.0.temp":70}\n')
    out = cli(store, "show", "eeee", env={"COLUMNS": "80"}).stdout
    assert "run      eeee0001" in out and "state    finished (exit code 0)" in out
    assert "net.depth" in out and "18" in out
    assert "cpu" in out and "10" in out and "20" in out and "30" in out
    assert "line 29" in out and "line 20" in out and "line 19" not in out
    assert "val_acc  (vs epoch)" in out and "loss  (vs _step, non-finite values not drawn)" in out
    assert "acc  (vs _step)" in out
    assert any(0x2800 < ord(c) <= 0x28FF for c in out)  # braille dots
    for line in out.splitlines():  # charts fit; paths and values are never cut
        if any(c in line for c in "\u2524\u2502\u2514"):
            assert len(line) <= 80, line
    # The val_acc chart is labelled with ticks around its max and min and
    # its axis's whole numbers (test_show.py checks the ticks in detail).
    chart = out.split("val_acc  (vs epoch)")[1]
    assert "0.9" in chart.splitlines()[1] and "0.6" in chart.splitlines()[10]
    assert chart.splitlines()[12].split() == ["1", "2", "3", "4"]
    only = cli(store, "show", "eeee0001", "--metric", "val_acc").stdout
    assert "val_acc  (vs epoch)" in only and "loss  (vs" not in only
    # --compare overlays another run and names both.
    write_run(store, "mnist", "eeee0002", history=[dict(h, acc=h["acc"] / 2) for h in hist])
    cmp = cli(store, "show", "eeee0001", "--metric", "acc", "--compare", "eeee0002").stdout
    assert "eeee0001" in cmp.split("acc  (vs")[1] and "eeee0002" in cmp.split("acc  (vs")[1]
    p = cli(store, "show", "aaaa", check=False)
    assert p.returncode == 1 and "is ambiguous" in p.stderr


def test_twenty_runs_at_once_keep_one_store_consistent(tmp_path):
    work = tmp_path / "w"
    work.mkdir()

    def one(i):
        return run_wrapped([str(EXAMPLES / "train_ok"), "--lr", f"0.{i + 1}", "--epochs", "3"],
                           work, flags=["--project", "par", "--tags", f"t{i % 4},all"],
                           timeout=120)

    with ThreadPoolExecutor(max_workers=20) as ex:
        results = list(ex.map(one, range(20)))
    assert all(r[0] == 0 for r in results), [r[2][-300:] for r in results if r[0]]
    store = work / "metrictap"
    dirs = sorted(p.name for p in (store / "runs" / "par").iterdir())
    assert len(dirs) == 20
    rows = json.loads(cli(store, "ls", "--json", "--project", "par").stdout)
    assert sorted(r["id"] for r in rows) == dirs
    for r in rows:
        d = store / "runs" / "par" / r["id"]
        on_disk = json.loads((d / "run.json").read_text())
        assert r["state"] == on_disk["state"] == "finished"
        assert r["summary"] == json.loads((d / "summary.json").read_text())
        assert r["summary"]["lr"] > 0
    assert len(ids(cli(store, "ls", "--json", "--tag", "t1"))) == 5
    db = sqlite3.connect(store / "index.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM tags WHERE tag = 'all'").fetchone()[0] == 20
    db.close()
    def table():
        return [(r["id"], r["state"], r["tags"], r["summary"], r["created"])
                for r in json.loads(cli(store, "ls", "--json").stdout)]
    before = table()
    cli(store, "reindex")
    assert table() == before
