"""The runs table as people ask it (issue 18): several sort keys, names that
match nothing (said with the nearest existing name), filters on dates,
quoted and non-ASCII keys, replacing columns, grouping, statistics computed
from history, finding runs by id, prefix, name and position, --help and
--version, and export of history as CSV or JSON lines."""
import csv
import io
import json
import time

import pytest

from conftest import CLI
from test_table import cli, ids, write_run


@pytest.fixture
def grid(tmp_path):
    """Four runs whose accuracies tie in pairs, so a second key decides."""
    s = tmp_path / "store"
    s.mkdir()
    for i, (acc, loss) in enumerate([(0.9, 0.3), (0.9, 0.1), (0.8, 0.05), (0.95, 0.2)]):
        write_run(s, "mnist", f"aaaa000{i}", start=1.7e9 + i * 100,
                  summary={"acc": acc, "loss": loss}, config={"lr": 0.1 * i, "opt": "adam"})
    write_run(s, "cifar", "bbbb0001", start=1.7e9 + 1000, summary={"acc": 0.5})
    return s


@pytest.mark.parametrize("scan", [[], ["--scan"]])
def test_sort_takes_several_keys_in_a_list_or_repeated(grid, scan):
    q = ["ls", "--project", "mnist", "--json", *scan]
    want = ["aaaa0003", "aaaa0001", "aaaa0000", "aaaa0002"]
    assert ids(cli(grid, *q, "--sort", "-summary.acc,summary.loss")) == want
    assert ids(cli(grid, *q, "--sort", "-summary.acc", "--sort", "summary.loss")) == want
    # the second key's direction counts: ties broken by the larger loss
    assert ids(cli(grid, *q, "--sort", "-summary.acc,-summary.loss")) == \
        ["aaaa0003", "aaaa0000", "aaaa0001", "aaaa0002"]
    # a built-in as the second key
    assert ids(cli(grid, *q, "--sort", "-summary.acc,created")) == \
        ["aaaa0003", "aaaa0000", "aaaa0001", "aaaa0002"]


def test_a_bad_sort_list_is_an_error(grid):
    p = cli(grid, "ls", "--sort", "-summary.acc,bogus", check=False)
    assert p.returncode == 2 and 'unknown column "bogus"' in p.stderr
    p = cli(grid, "ls", "--sort", ",", check=False)
    assert p.returncode == 2 and "names no column" in p.stderr


@pytest.mark.parametrize("scan", [[], ["--scan"]])
def test_names_that_match_nothing_are_said_with_the_nearest(grid, scan):
    p = cli(grid, "ls", "--json", "--sort", "-summary.accc", *scan, check=False)
    assert p.returncode == 1
    assert "no run has summary.accc; did you mean summary.acc?" in p.stderr
    # what matches is still printed, in the order the rest of the request gives
    assert len(ids(p)) == 5
    p = cli(grid, "ls", "--json", "--project", "mnist", "--filter", "config.lrr > 0",
            "--columns", "summary.lss", *scan, check=False)
    assert p.returncode == 1
    assert 'no run of project "mnist" has config.lrr; did you mean config.lr?' in p.stderr
    assert "has summary.lss; did you mean summary.loss?" in p.stderr
    assert ids(p) == []
    # a key only another project has is unknown in this one
    p = cli(grid, "ls", "--project", "cifar", "--sort", "summary.loss", *scan, check=False)
    assert p.returncode == 1 and 'project "cifar" has summary.loss' in p.stderr
    p = cli(grid, "ls", "--json", "--project", "mnst", *scan, check=False)
    assert p.returncode == 1 and ids(p) == []
    assert 'no run has project "mnst"; did you mean "mnist"? (projects: cifar, mnist)' in p.stderr
    p = cli(grid, "ls", "--json", "--state", "finshed,lost", *scan, check=False)
    assert p.returncode == 1 and ids(p) == []
    assert 'no state "finshed"; did you mean "finished"?' in p.stderr
    # well formed: exit 0 and nothing on stderr
    p = cli(grid, "ls", "--json", "--project", "mnist", "--state", "finished,lost", "--sort",
            "summary.loss", "--filter", "config.lr > 0", "--columns", "summary.acc", *scan)
    assert p.returncode == 0 and p.stderr == "" and len(ids(p)) == 3


def test_a_bare_word_where_a_value_belongs_gets_a_hint(grid):
    p = cli(grid, "ls", "--filter", "config.opt = adam", check=False)
    assert p.returncode == 2
    assert 'did you mean "adam"?' in p.stderr
    assert ids(cli(grid, "ls", "--json", "--filter", 'config.opt = "adam"')) != []


@pytest.fixture
def dated(tmp_path):
    """Runs started 3 h, 1 h and 10 min ago, and one at a fixed UTC date."""
    s = tmp_path / "store"
    s.mkdir()
    now = time.time()
    for rid, ago in (("old00001", 3 * 3600), ("hour0001", 3600), ("new00001", 600)):
        write_run(s, "p", rid, start=now - ago)
    write_run(s, "p", "fixed001", start=1748760000.0)  # 2025-06-01 06:40:00 UTC
    return s


@pytest.mark.parametrize("scan", [[], ["--scan"]])
def test_created_and_ended_take_dates_and_relative_times(dated, scan):
    q = ["ls", "--json", *scan, "--filter"]
    assert ids(cli(dated, *q, "created > -2h")) == ["new00001", "hour0001"]
    assert ids(cli(dated, *q, 'created > "-30m"')) == ["new00001"]
    assert ids(cli(dated, *q, "created < -2h and created > -1d")) == ["old00001"]
    # write_run's runs end a minute after they start
    assert ids(cli(dated, *q, "ended > -15m")) == ["new00001"]
    assert ids(cli(dated, *q, 'created > "2025-06-01 06:30Z" and created < "2025-06-01T06:50:00Z"')) \
        == ["fixed001"]
    assert ids(cli(dated, *q, 'created >= "2025-06-01Z" and created < "2025-06-02Z"')) \
        == ["fixed001"]
    p = cli(dated, *q, 'created > "yesterday"', check=False)
    assert p.returncode == 2 and "takes a date" in p.stderr
    # a local date reads as ls prints it
    env = {"TZ": "Asia/Tokyo"}  # UTC+9: 06:40Z is 15:40 there
    assert ids(cli(dated, *q, 'created > "2025-06-01 15:30" and created < "2025-06-01 15:50"',
                   env=env)) == ["fixed001"]


@pytest.mark.parametrize("scan", [[], ["--scan"]])
def test_quoted_and_non_ascii_keys(tmp_path, scan):
    s = tmp_path / "store"
    s.mkdir()
    write_run(s, "p", "q0000001", summary={"P@3": 0.7, "précision": 0.9, "a b": 1, "x,y": 2})
    write_run(s, "p", "q0000002", summary={"P@3": 0.2, "précision": 0.1, "a b": 0, "x,y": 0},
              start=1.7e9 + 10)
    q = ["ls", "--json", *scan]
    assert ids(cli(s, *q, "--filter", 'summary."P@3" > 0.5')) == ["q0000001"]
    assert ids(cli(s, *q, "--filter", "summary.'P@3' > 0.5")) == ["q0000001"]
    assert ids(cli(s, *q, "--filter", "summary.précision > 0.5")) == ["q0000001"]
    assert ids(cli(s, *q, "--filter", "summary.`a b` > 0")) == ["q0000001"]
    assert ids(cli(s, *q, "--filter", 'summary."x,y" > 1')) == ["q0000001"]
    assert ids(cli(s, *q, "--sort", "-summary.'x,y'")) == ["q0000001", "q0000002"]
    p = cli(s, *q, "--columns", 'summary."P@3",summary."x,y",summary.précision',
            "--sort", 'summary."P@3"')
    rows = json.loads(p.stdout)
    assert [r["id"] for r in rows] == ["q0000002", "q0000001"]
    assert rows[1]["columns"] == {"summary.P@3": 0.7, "summary.x,y": 2, "summary.précision": 0.9}


def names(store):
    return {r["id"]: (r["name"], r["tags"]) for r in json.loads(cli(store, "ls", "--json").stdout)}


def test_every_run_taking_command_finds_runs_the_same_ways(grid):
    # newest is bbbb0001 (cifar), then aaaa0003, aaaa0002, aaaa0001, aaaa0000
    assert "aaaa0001 name: best" in cli(grid, "rename", "aaaa0001", "best").stdout  # id
    assert "aaaa0003 name: best" in cli(grid, "rename", "-2", "best").stdout        # position
    assert "bbbb0001 tags: new" in cli(grid, "tag", "latest", "+new").stdout
    assert "bbbb0001 tags: new,one" in cli(grid, "tag", "-1", "+one").stdout
    assert "aaaa0003 tags: top" in cli(grid, "tag", "--project", "mnist", "-1", "+top").stdout
    assert "aaaa0000 tags: low" in cli(grid, "tag", "--project=mnist", "-4", "+low").stdout
    assert "aaaa0002 tags: p" in cli(grid, "tag", "aaaa0002"[:7] + "2", "+p").stdout
    assert "bbbb0001 tags: new,one,b" in cli(grid, "tag", "bbbb", "+b").stdout       # prefix
    assert "aaaa0000 name: first" in cli(grid, "rename", "run-aaaa0000", "first").stdout
    assert "aaaa0000 tags: low,n" in cli(grid, "tag", "first", "+n").stdout          # name
    # a name two runs share lists them, and changes nothing
    p = cli(grid, "tag", "best", "+x", check=False)
    assert p.returncode == 1
    assert '"best" is ambiguous: it names 2 runs; give one of their ids:' in p.stderr
    assert "aaaa0003" in p.stderr and "aaaa0001" in p.stderr
    p = cli(grid, "rename", "aaaa", "y", check=False)
    assert p.returncode == 1 and '"aaaa" is ambiguous: it matches 4 runs' in p.stderr
    # the project scope
    p = cli(grid, "tag", "--project", "cifar", "aaaa0001", "+x", check=False)
    assert p.returncode == 1 and "no run aaaa0001 in cifar" in p.stderr
    p = cli(grid, "tag", "--project", "mnist", "-5", "+x", check=False)
    assert p.returncode == 1 and "mnist has fewer runs than that" in p.stderr
    assert "x" not in str(names(grid))
    # rm takes -N as a run, not an option; recover and restore resolve the same way
    assert "removed aaaa0000" in cli(grid, "rm", "--project", "mnist", "-4", "--yes").stdout
    assert "aaaa0000" not in names(grid)
    p = cli(grid, "recover", "--project", "mnist", "latest", check=False)
    assert "aaaa0003 is complete" in p.stderr
    p = cli(grid, "restore", "best", check=False)
    assert 'it names 2 runs' in p.stderr
    # show: by name, position and project, and in --compare
    assert cli(grid, "show", "first", check=False).returncode == 1  # removed above
    out = cli(grid, "show", "--project", "mnist", "-1", "--compare", "-2", "aaaa0001").stdout
    assert "aaaa0003" in out and "aaaa0002" in out and "aaaa0001" in out
    p = cli(grid, "show", "best", check=False)
    assert p.returncode == 1 and 'it names 2 runs' in p.stderr


def test_sync_and_export_take_the_same_run_names(grid, tmp_path):
    tb = tmp_path / "tb"
    env = {"METRICTAP_TENSORBOARD_LOGDIR": str(tb)}
    cli(grid, "rename", "aaaa0001", "chosen")
    p = cli(grid, "export", "--to", "tensorboard", "chosen", "--project", "mnist", "-2", env=env)
    assert p.returncode == 0, p.stderr
    written = sorted(d.name for d in (tb / "mnist").iterdir())
    assert any("aaaa0001" in w for w in written) and any("aaaa0002" in w for w in written)
    assert len(written) == 2
    p = cli(grid, "sync", "--to", "tensorboard", "nosuchrun", env=env, check=False)
    assert p.returncode == 1 and "no run nosuchrun" in p.stderr
    tb2 = tmp_path / "tb2"
    cli(grid, "export", "--to", "tensorboard", "--all", "--project", "cifar",
        env={"METRICTAP_TENSORBOARD_LOGDIR": str(tb2)})
    assert [d.name for d in tb2.iterdir()] == ["cifar"]  # --all within the project


def test_version_and_every_command_help(tmp_path):
    store = tmp_path / "nostore"
    p = cli(store, "--version")
    assert p.stdout.startswith("metrictap ") and p.stdout.split()[1][0].isdigit()
    listed = cli(store, "--help").stdout
    commands = [line.split()[0] for line in listed.splitlines()[3:] if line.startswith("  ")]
    assert {"run", "ls", "show", "sync", "export", "tag"} <= set(commands)
    for c in commands:
        for flag in (["--help"], ["-h"], ["--project", "x", "--help"]):
            if c in ("run", "config") and flag[0] == "--project":
                continue  # run's first word may be the program; config takes no --project
            p = cli(store, c, *flag, check=False)
            assert p.returncode == 0, (c, flag, p.stderr)
            assert p.stdout.startswith(f"usage: metrictap {c}"), (c, p.stdout)
            if c != "config":  # config --help lists its keys
                assert p.stderr == "", (c, p.stderr)
        assert cli(store, "help", c).stdout == cli(store, c, "--help").stdout
    assert not store.exists()  # asking for help touched nothing
    # the program's own --help stays the program's
    p = cli(store, "run", "--", "echo", "--help", env={"METRICTAP_MODE": "disabled"})
    assert "usage: metrictap" not in p.stdout and "--help" in p.stdout
    p = cli(store, "run", "echo", "--help", env={"METRICTAP_MODE": "disabled"})
    assert "usage: metrictap" not in p.stdout


def table(p):
    return [line.split() for line in p.stdout.splitlines()]


def test_columns_can_replace_the_default_ones(grid):
    p = cli(grid, "ls", "--project", "mnist", "--sort", "-summary.acc",
            "--columns", "=id,name,summary.acc,created,state")
    lines = table(p)
    assert lines[0] == ["ID", "NAME", "summary.acc", "CREATED", "STATE"]
    assert lines[1][:3] == ["aaaa0003", "run-aaaa0003", "0.95"] and lines[1][-1] == "finished"
    assert len(lines[1]) == 6  # the date and time of CREATED
    p = cli(grid, "ls", "--project", "mnist", "--csv", "--sort", "-summary.acc",
            "--columns", "=id,summary.acc,created")
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows[0] == ["id", "summary.acc", "created"]
    assert rows[1][:2] == ["aaaa0003", "0.95"] and rows[1][2].endswith("Z")
    # without "=" they are added to the default ones
    assert table(cli(grid, "ls", "--project", "mnist", "--columns", "summary.acc"))[0][-1] \
        == "summary.acc"


def test_a_project_column_when_several_projects_are_listed(grid):
    assert "PROJECT" in table(cli(grid, "ls"))[0]
    assert "PROJECT" not in table(cli(grid, "ls", "--project", "mnist"))[0]
    lines = table(cli(grid, "ls"))
    col = lines[0].index("PROJECT")
    assert {ln[col] for ln in lines[1:]} == {"mnist", "cifar"}


def test_long_headers_are_shortened_without_becoming_ambiguous(tmp_path):
    s = tmp_path / "store"
    s.mkdir()
    summ = {"eval_accuracy_top1": 0.5, "eval_accuracy_top5": 0.9, "loss": 1.0}
    write_run(s, "p", "h0000001", summary=summ, config={"loss": "ce"})
    cols = "summary.eval_accuracy_top1,summary.eval_accuracy_top5,config.loss,summary.loss"
    wide = table(cli(s, "ls", "--columns", cols, env={"COLUMNS": "300"}))[0]
    assert wide[-4:] == cols.split(",")  # room enough: the full names
    for width in (130, 115, 100):  # 100: as narrow as ids, times and numbers allow
        p = cli(s, "ls", "--columns", cols, env={"COLUMNS": str(width)})
        head = table(p)[0][-4:]
        assert len(set(head)) == 4, head  # never two alike
        assert all(len(line) <= width for line in p.stdout.splitlines()), width
        assert head[0] != head[1] and head[0].startswith("eva") and head[0].endswith("1")
        assert head[1].endswith("5")
        # config.loss and summary.loss keep what tells them apart
        assert head[2].startswith("c") and head[3].startswith("s")
        assert "0.5" in p.stdout and "0.9" in p.stdout  # numbers are never cut
    # where a key is unique its prefix goes first
    p = cli(s, "ls", "--columns", "summary.eval_accuracy_top1", env={"COLUMNS": "96"})
    assert table(p)[0][-1] == "eval_accuracy_top1"


@pytest.fixture
def seeds(tmp_path):
    s = tmp_path / "store"
    s.mkdir()
    k = 0
    for opt, accs in (("adam", [0.9, 0.8, 0.7]), ("sgd", [0.5, 0.6])):
        for acc in accs:
            k += 1
            write_run(s, "p", f"g000000{k}", start=1.7e9 + k,
                      config={"optimizer": opt, "seed": k}, summary={"acc": acc, "note": "x"})
    write_run(s, "p", "g0000009", start=1.7e9 + 9, summary={"acc": 0.1})
    return s


def test_group_by_aggregates_the_chosen_columns(seeds):
    p = cli(seeds, "ls", "--group-by", "config.optimizer", "--columns", "summary.acc", "--json",
            "--sort", "config.optimizer")
    groups = {g["group"]: g for g in json.loads(p.stdout)}
    assert [g["group"] for g in json.loads(p.stdout)] == ["adam", "sgd", None]
    adam = groups["adam"]["columns"]["summary.acc"]
    assert groups["adam"]["runs"] == 3 and adam["n"] == 3
    assert adam["mean"] == pytest.approx(0.8) and adam["std"] == pytest.approx(0.1)
    assert (adam["min"], adam["max"]) == (0.7, 0.9)
    assert groups["sgd"]["columns"]["summary.acc"]["mean"] == pytest.approx(0.55)
    assert groups[None]["runs"] == 1 and groups[None]["columns"]["summary.acc"]["std"] is None
    p = cli(seeds, "ls", "--group-by", "config.optimizer", "--columns", "summary.acc,summary.note",
            "--sort", "config.optimizer")
    lines = table(p)
    assert lines[0] == ["summary.acc"]
    assert lines[1] == ["config.optimizer", "RUNS", "n", "mean", "std", "min", "max"]
    assert lines[2] == ["adam", "3", "3", "0.8", "0.1", "0.7", "0.9"]
    assert lines[4][0] == "(none)"
    assert "summary.note has no numbers" in p.stderr
    rows = list(csv.reader(io.StringIO(cli(seeds, "ls", "--group-by", "config.optimizer",
                                           "--columns", "summary.acc", "--csv").stdout)))
    assert rows[0] == ["config.optimizer", "runs", "summary.acc n", "summary.acc mean",
                       "summary.acc std", "summary.acc min", "summary.acc max"]
    # filters and project scope apply before grouping
    p = cli(seeds, "ls", "--group-by", "config.optimizer", "--columns", "summary.acc", "--json",
            "--filter", "summary.acc > 0.75")
    assert [(g["group"], g["runs"]) for g in json.loads(p.stdout)] == [("adam", 2)]


@pytest.fixture
def histories(tmp_path):
    s = tmp_path / "store"
    s.mkdir()
    rows1 = [(2.0, 0.1), (0.3, 0.9), (0.5, 0.7)]
    write_run(s, "p", "h0000001", summary={"loss": 0.5, "acc": 0.7},
              history=[{"_step": i, "loss": lo, "acc": a} for i, (lo, a) in enumerate(rows1)])
    # this run's summary was configured with min before it ran: that value counts
    rows2 = [(1.0, 0.2), (0.4, 0.8), ("NaN", 0.8)]
    write_run(s, "p", "h0000002", start=1.7e9 + 5,
              summary={"loss": 0.4, "loss.min": 0.05, "acc": 0.8},
              history=[{"_step": i, "loss": lo, "acc": a} for i, (lo, a) in enumerate(rows2)],
              metrics={"acc": {"goal": "minimize"}})
    return s


@pytest.mark.parametrize("scan", [[], ["--scan"]])
def test_summary_statistics_of_any_history_metric(histories, scan):
    cols = ["summary.loss.min", "summary.loss.max", "summary.loss.mean", "summary.loss.first",
            "summary.loss.last", "summary.loss.best", "summary.acc.best"]
    p = cli(histories, "ls", "--json", *scan, "--columns", ",".join(cols),
            "--sort", "summary.loss.min")
    assert p.stderr == ""
    rows = {r["id"]: r["columns"] for r in json.loads(p.stdout)}
    assert [r["id"] for r in json.loads(p.stdout)] == ["h0000002", "h0000001"]
    assert rows["h0000001"] == {"summary.loss.min": 0.3, "summary.loss.max": 2,
                                "summary.loss.mean": pytest.approx(2.8 / 3),
                                "summary.loss.first": 2, "summary.loss.last": 0.5,
                                "summary.loss.best": 0.3, "summary.acc.best": 0.9}
    # the stored loss.min wins; NaN is no value; acc's goal says minimize
    two = rows["h0000002"]
    assert two["summary.loss.min"] == 0.05 and two["summary.loss.max"] == 1
    assert two["summary.loss.last"] == 0.4 and two["summary.acc.best"] == 0.2
    assert ids(cli(histories, "ls", "--json", *scan, "--filter", "summary.acc.max > 0.85")) \
        == ["h0000001"]
    p = cli(histories, "ls", *scan, "--columns", "summary.lss.max", check=False)
    assert p.returncode == 1 and "no run has summary.lss.max" in p.stderr


def test_statistics_of_a_real_trainers_run(tmp_path):
    from conftest import EXAMPLES, run_wrapped
    rc, _, err = run_wrapped([str(EXAMPLES / "train_ok"), "--lr", "0.1", "--epochs", "3"],
                             tmp_path)
    assert rc == 0, err
    store = tmp_path / "metrictap"
    rows = json.loads(cli(store, "ls", "--json", "--columns",
                          "summary.loss.max,summary.loss.min,summary.acc.first").stdout)
    hist = [json.loads(x) for x in next((store / "runs").glob("*/*/history.jsonl")).read_text()
            .splitlines()]
    losses = [h["loss"] for h in hist if "loss" in h]
    assert len(losses) == 3
    assert rows[0]["columns"] == {"summary.loss.max": max(losses), "summary.loss.min": min(losses),
                                  "summary.acc.first": hist[0]["acc"]}


@pytest.fixture
def two_runs(tmp_path):
    s = tmp_path / "store"
    s.mkdir()
    d1 = write_run(s, "p", "e0000001", name="first, quoted \"one\"", start=1.7e9)
    (d1 / "history.jsonl").write_text(
        '{"_step":0,"epoch":1,"loss":1.5100,"acc":0.3}\n'
        '{"_step":1,"epoch":2,"loss":"NaN","note":"a,b"}\n'
        '{"_step":2,"epoch":3,"loss":1e-5,"acc":0.90}\n'
        'not json at all\n'
        '{"_step":3,"loss":0.')  # torn: still being written
    d2 = write_run(s, "p", "e0000002", name="second", start=1.7e9 + 10)
    (d2 / "history.jsonl").write_text('{"_step":0,"batch":7,"loss":2.0,"lr":[0.1,0.2]}\n')
    return s


def test_export_history_as_csv(two_runs):
    p = cli(two_runs, "export", "--csv", "e0000001", "second", check=False)
    assert p.returncode == 1  # the line that is no JSON object is said, not dropped silently
    assert "1 line of run e0000001's history.jsonl is not a JSON object" in p.stderr
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows[0] == ["run", "name", "_step", "epoch", "loss", "acc", "note", "batch", "lr"]
    assert rows[1] == ["e0000001", 'first, quoted "one"', "0", "1", "1.5100", "0.3", "", "", ""]
    assert rows[2] == ["e0000001", 'first, quoted "one"', "1", "2", "NaN", "", "a,b", "", ""]
    assert rows[3][4:6] == ["1e-5", "0.90"]  # numbers as written
    assert rows[4] == ["e0000002", "second", "0", "", "2.0", "", "", "7", "[0.1,0.2]"]
    assert len(rows) == 5
    p = cli(two_runs, "export", "--csv", "--columns", "epoch,loss", "--project", "p", "-1")
    assert list(csv.reader(io.StringIO(p.stdout))) == [["run", "name", "epoch", "loss"],
                                                      ["e0000002", "second", "", "2.0"]]


def test_export_history_as_json_lines(two_runs):
    p = cli(two_runs, "export", "--json", "--all", check=False)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x["run"] for x in lines] == ["e0000002"] + ["e0000001"] * 3  # newest first
    assert lines[0] == {"run": "e0000002", "name": "second", "_step": 0, "batch": 7,
                        "loss": 2.0, "lr": [0.1, 0.2]}
    assert '"loss":1.5100' in p.stdout.splitlines()[1]  # as written
    p = cli(two_runs, "export", "--json", "--columns", "loss", "e0000001", check=False)
    assert [json.loads(x) for x in p.stdout.splitlines()][1] == \
        {"run": "e0000001", "name": 'first, quoted "one"', "loss": "NaN"}
    p = cli(two_runs, "export", "e0000001", check=False)
    assert p.returncode == 2 and "--csv or --json" in p.stderr
    p = cli(two_runs, "export", "--csv", "nosuch", check=False)
    assert p.returncode == 1 and "no run nosuch" in p.stderr


def test_readme_reads_the_store_with_pandas(tmp_path):
    """The README's three lines, run against a real run's store."""
    pd = pytest.importorskip("pandas")
    from conftest import EXAMPLES, ROOT, run_wrapped
    rc, _, err = run_wrapped([str(EXAMPLES / "train_ok"), "--lr", "0.1", "--epochs", "3"],
                             tmp_path, flags=["--project", "mnist"])
    assert rc == 0, err
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    code = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(code) == 4  # the import and the three lines
    scope = {"RUN": next((tmp_path / "metrictap" / "runs" / "mnist").iterdir()).name}
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec("\n".join(code), scope)
    finally:
        os.chdir(cwd)
    assert list(scope["history"]["loss"]) == pytest.approx([1.51, 1.1525, 0.8944])
    assert scope["summary"]["acc"] == 0.685
    assert list(scope["runs"]["id"]) == [scope["RUN"]]
    assert isinstance(scope["runs"], pd.DataFrame)


GRID_TRAINER = '''
import argparse, math
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--batch-size", type=int)
p.add_argument("--optimizer")
a = p.parse_args()
bonus = {"adam": 0.03, "sgd": 0.0, "lamb": 0.02}[a.optimizer]
for epoch in range(1, 4):
    acc = 0.9 - abs(math.log10(a.lr) + 3) * 0.05 + bonus + epoch * 0.01 - (a.batch_size == 64) * 0.005
    loss = 1.0 - acc + 0.1 / epoch
    print(f"epoch {epoch} eval_accuracy={acc:.4f} eval_loss={loss:.4f}", flush=True)
'''


def test_a_30_run_grid_from_best_run_to_its_history(tmp_path):
    """5 learning rates x 2 batch sizes x 3 optimizers, run for real."""
    from concurrent.futures import ThreadPoolExecutor
    from conftest import run_wrapped
    (tmp_path / "train.py").write_text(GRID_TRAINER)
    grid = [(lr, bs, opt) for lr in ("0.1", "0.01", "0.001", "0.0001", "0.00001")
            for bs in ("32", "64") for opt in ("adam", "sgd", "lamb")]

    def one(g):
        lr, bs, opt = g
        return run_wrapped(["python3", "train.py", "--lr", lr, "--batch-size", bs,
                            "--optimizer", opt], tmp_path, flags=["--project", "grid"],
                           timeout=120)
    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(one, grid))
    assert all(r[0] == 0 for r in results), [r[2] for r in results if r[0]]
    store = tmp_path / "metrictap"
    # the best run and its two neighbours
    p = cli(store, "ls", "--project", "grid", "--sort", "-summary.eval_accuracy,summary.eval_loss",
            "--limit", "3", "--json")
    best = json.loads(p.stdout)
    assert [(r["config"]["lr"], r["config"]["batch_size"], r["config"]["optimizer"])
            for r in best] == [(0.001, 32, "adam"), (0.001, 64, "adam"), (0.001, 32, "lamb")]
    # seeds-style grouping
    p = cli(store, "ls", "--project", "grid", "--group-by", "config.optimizer", "--columns",
            "summary.eval_accuracy", "--json", "--sort", "-summary.eval_accuracy")
    groups = json.loads(p.stdout)
    assert [(g["group"], g["runs"]) for g in groups] == [("adam", 10), ("lamb", 10), ("sgd", 10)]
    # statistics nobody configured, from history
    p = cli(store, "ls", "--project", "grid", "--columns", "summary.eval_loss.min,"
            "summary.eval_accuracy.first", "--filter", "summary.eval_loss.min < 0.085", "--json")
    rows = json.loads(p.stdout)
    assert {r["id"] for r in rows} == {best[0]["id"], best[1]["id"], best[2]["id"]}
    assert all(r["columns"]["summary.eval_accuracy.first"] < r["summary"]["eval_accuracy"]
               for r in rows)
    # the best run by name, everywhere
    cli(store, "rename", best[0]["id"], "best-lr1e-3")
    p = cli(store, "export", "--csv", "--columns", "epoch,eval_accuracy", "best-lr1e-3")
    assert p.stdout.splitlines()[1:] == [f"{best[0]['id']},best-lr1e-3,1,0.9400",
                                         f"{best[0]['id']},best-lr1e-3,2,0.9500",
                                         f"{best[0]['id']},best-lr1e-3,3,0.9600"]
    assert "tags: best" in cli(store, "tag", "--project", "grid", "best-lr1e-3", "+best").stdout
    assert ids(cli(store, "ls", "--json", "--tag", "best", "--filter", "created > -1h")) == \
        [best[0]["id"]]


def test_ls_shows_a_running_runs_new_values_within_two_seconds(tmp_path):
    """A value printed by a running run is in `ls` about a second later (the
    agent writes the index row on new values, at most once a second; the bound
    leaves room for a loaded machine); it took
    5-10 s when the row was refreshed every 10 s."""
    import subprocess
    from conftest import clean_env
    store, go, done = tmp_path / "store", tmp_path / "go", tmp_path / "done"
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\n"
                      "echo 'epoch 1 loss=0.5'\n"
                      f"while [ ! -e {go} ]; do sleep 0.02; done\n"
                      "echo 'epoch 2 loss=0.25'\n"
                      f"while [ ! -e {done} ]; do sleep 0.05; done\n")
    script.chmod(0o755)
    env = clean_env({"METRICTAP_DIR": str(store)})
    p = subprocess.Popen([str(CLI), "run", "--project", "live", "--", str(script)], env=env,
                         cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def loss():
        out = cli(store, "ls", "--json", check=False).stdout
        rows = json.loads(out) if out.strip().startswith("[") else []
        return rows[0].get("summary", {}).get("loss") if rows else None
    try:
        deadline = time.monotonic() + 60
        while loss() != 0.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loss() == 0.5
        time.sleep(1.5)  # the first value's index write is behind us
        go.write_text("")
        printed = time.monotonic()
        while loss() != 0.25 and time.monotonic() < printed + 10:
            time.sleep(0.05)
        seen = time.monotonic() - printed
        assert loss() == 0.25
        assert seen < 3.5, f"ls showed the new value {seen:.1f} s after it was printed"
    finally:
        done.write_text("")
        p.wait(timeout=60)
