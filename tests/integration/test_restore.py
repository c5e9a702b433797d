"""metrictap restore RUN [--dir D]: check out a run's commit on a new branch
(or a worktree) and apply its diff.patch; refuse a dirty tree.

Builds build/metrictap with make, then works in throwaway git repositories
and a hand-made run store (run.json + diff.patch as the agent writes them)."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "build" / "metrictap"
IDENTITY = dict(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
                GIT_COMMITTER_EMAIL="t@e", GIT_CONFIG_NOSYSTEM="1")


@pytest.fixture(scope="session", autouse=True)
def built():
    subprocess.run(["make", "-s", "build/metrictap"], cwd=ROOT, check=True)


@pytest.fixture
def env(tmp_path):
    (tmp_path / "home").mkdir()
    e = dict(os.environ, HOME=str(tmp_path / "home"), METRICTAP_DIR=str(tmp_path / "store"),
             **IDENTITY)
    return e


def git(cwd, *args, check=True):
    e = dict(os.environ, **IDENTITY)
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True,
                          env=e)


def out(cwd, *args):
    return git(cwd, *args).stdout.decode().strip()


def make_run(tmp_path, run_id="abcd1234", patch=True, commit=True):
    """A repo at commit C with a dirty tree recorded as run_id's diff.patch;
    then the tree is cleaned and main moves on, as it would after the run."""
    repo = tmp_path / "repo"
    if not repo.exists():
        repo.mkdir()
        git(repo, "init", "-q")
        git(repo, "checkout", "-q", "-b", "main")
        (repo / "f.txt").write_text("one\n")
        (repo / "bin.dat").write_bytes(b"A\x00B")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "one")
    c = out(repo, "rev-parse", "HEAD")
    (repo / "f.txt").write_text("one\ntwo\n")
    (repo / "bin.dat").write_bytes(b"A\x00C\x01\xff")
    run_dir = tmp_path / "store" / "runs" / "proj" / run_id
    run_dir.mkdir(parents=True)
    if patch:
        (run_dir / "diff.patch").write_bytes(git(repo, "diff", "HEAD", "--binary").stdout)
    meta = {"git": {"commit": c, "remote": "https://example.com/o/r.git"}} if commit else {}
    (run_dir / "run.json").write_text(json.dumps({"id": run_id, "metadata": meta}))
    git(repo, "checkout", "-q", "--", ".")
    (repo / f"later-{run_id}.txt").write_text("later\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "later")
    return repo, c


def restore(cwd, env, *args):
    return subprocess.run([str(CLI), "restore", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_restore_in_place_checks_out_branch_and_applies_patch(tmp_path, env):
    repo, c = make_run(tmp_path)
    r = restore(repo, env, "abcd")
    assert r.returncode == 0, r.stderr
    assert "metrictap/abcd1234" in r.stdout
    assert out(repo, "symbolic-ref", "--short", "HEAD") == "metrictap/abcd1234"
    assert out(repo, "rev-parse", "HEAD") == c
    assert (repo / "f.txt").read_text() == "one\ntwo\n"
    assert (repo / "bin.dat").read_bytes() == b"A\x00C\x01\xff"
    assert not (repo / "later-abcd1234.txt").exists()

    git(repo, "checkout", "-q", "--", ".")
    again = restore(repo, env, "abcd1234")   # the branch is there now
    assert again.returncode != 0
    assert "already exists" in again.stderr


def test_restore_refuses_a_dirty_tree_and_says_why(tmp_path, env):
    repo, c = make_run(tmp_path)
    (repo / "f.txt").write_text("edited\n")
    r = restore(repo, env, "abcd1234")
    assert r.returncode != 0
    assert "uncommitted changes" in r.stderr and "f.txt" in r.stderr
    assert out(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert (repo / "f.txt").read_text() == "edited\n"
    assert out(repo, "branch", "--list", "metrictap/*") == ""


def test_restore_into_worktree_leaves_current_tree_alone(tmp_path, env):
    repo, c = make_run(tmp_path)
    (repo / "f.txt").write_text("edited\n")          # dirty, but --dir does not touch it
    wt = tmp_path / "wt"
    r = restore(repo, env, "abcd1234", "--dir", str(wt))
    assert r.returncode == 0, r.stderr
    assert out(wt, "rev-parse", "HEAD") == c
    assert (wt / "f.txt").read_text() == "one\ntwo\n"
    assert (wt / "bin.dat").read_bytes() == b"A\x00C\x01\xff"
    assert (repo / "f.txt").read_text() == "edited\n"
    assert out(repo, "symbolic-ref", "--short", "HEAD") == "main"


def test_restore_run_without_patch_or_commit(tmp_path, env):
    repo, c = make_run(tmp_path, "clean000", patch=False)
    r = restore(repo, env, "clean")
    assert r.returncode == 0, r.stderr
    assert "no diff.patch" in r.stdout
    assert (repo / "f.txt").read_text() == "one\n"
    git(repo, "checkout", "-q", "main")
    make_run(tmp_path, "nocode00", commit=False)
    r = restore(repo, env, "nocode")
    assert r.returncode != 0 and "recorded no git commit" in r.stderr


def test_restore_unknown_and_ambiguous_ids(tmp_path, env):
    repo, _ = make_run(tmp_path, "abcd1234")
    make_run(tmp_path, "abce5678")
    r = restore(repo, env, "abc")
    assert r.returncode != 0 and "ambiguous" in r.stderr
    r = restore(repo, env, "zzzz")
    assert r.returncode != 0 and "no run zzzz" in r.stderr
    r = restore(tmp_path, env, "abcd")                 # not in a repository
    assert r.returncode != 0 and "not inside a git repository" in r.stderr
