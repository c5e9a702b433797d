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
