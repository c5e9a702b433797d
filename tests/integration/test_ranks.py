"""Distributed jobs (issue 5): ranks launched by hand with the variables a
launcher sets.  By default the ranks of a group on one host share a run, each
rank's console is kept and labelled, and only rank 0 is parsed for metrics;
METRICTAP_RANKS=all parses every rank, per-rank gives each rank its own run."""
import subprocess

import pytest

from conftest import CLI, SHIM, clean_env, latest_run, read_run, run_dirs, wait_finished

RANK_VARS = {
    "torchrun": lambda r: {"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "4"},
    "openmpi": lambda r: {"OMPI_COMM_WORLD_RANK": str(r), "OMPI_COMM_WORLD_SIZE": "4"},
    "mpich": lambda r: {"PMI_RANK": str(r), "PMI_SIZE": "4"},
    "slurm": lambda r: {"SLURM_PROCID": str(r), "SLURM_NTASKS": "4"},
}


def launch_ranks(workdir, style, group_vars, extra=None, preload=False):
    """Starts 4 ranks at once; each prints its own loss and a line on stderr."""
    procs = []
    for r in range(4):
        env = clean_env({**RANK_VARS[style](r), **group_vars, **(extra or {})})
        script = f"echo 'step 1 loss={r}.5'; echo 'rank {r} says hi' >&2; sleep 0.{r}"
        argv = ["sh", "-c", script]
        if preload:
            env["LD_PRELOAD"] = str(SHIM)
        else:
            argv = [str(CLI), "run", "--", *argv]
        procs.append(subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    for r, (out, err, rc) in enumerate(results):
        assert rc == 0 and out == f"step 1 loss={r}.5\n".encode()
        assert err == f"rank {r} says hi\n".encode()
    return results


def finished_runs(workdir):
    runs = []
    for d in run_dirs(workdir / "metrictap"):
        wait_finished(d)
        runs.append(read_run(d))
    return runs


@pytest.mark.parametrize("style,group_vars,preload", [
    ("torchrun", {"TORCHELASTIC_RUN_ID": "elastic-7"}, False),
    ("slurm", {"SLURM_JOB_ID": "4242"}, False),
    ("openmpi", {"METRICTAP_GROUP": "sweep-a"}, True),
    ("mpich", {"WANDB_RUN_GROUP": "sweep-b"}, True),
])
def test_ranks_share_one_run_and_only_rank0_is_parsed(workdir, style, group_vars, preload):
    launch_ranks(workdir, style, group_vars, preload=preload)
    runs = finished_runs(workdir)
    assert len(runs) == 1
    run = runs[0]
    assert run["run"]["group"] == list(group_vars.values())[0]
    ranks = sorted(r["rank"] for r in run["run"]["metadata"]["ranks"])
    assert ranks == [0, 1, 2, 3]
    assert run["run"]["state"] == "finished"
    log = run["output"].decode()
    for r in range(4):
        assert f"[rank {r}] step 1 loss={r}.5\n" in log
        assert f"[rank {r}] rank {r} says hi\n" in log
    assert [row["loss"] for row in run["history"]] == [0.5]  # rank 0 only
    assert run["summary"]["loss"] == 0.5


def test_all_ranks_parsed_into_one_run(workdir):
    launch_ranks(workdir, "torchrun", {"SLURM_JOB_ID": "77"}, {"METRICTAP_RANKS": "all"})
    runs = finished_runs(workdir)
    assert len(runs) == 1
    assert sorted(row["loss"] for row in runs[0]["history"]) == [0.5, 1.5, 2.5, 3.5]


def test_one_run_per_rank_in_a_group(workdir):
    launch_ranks(workdir, "torchrun", {"SLURM_JOB_ID": "78"}, {"METRICTAP_RANKS": "per-rank"})
    runs = finished_runs(workdir)
    assert len(runs) == 4
    assert {r["run"]["group"] for r in runs} == {"78"}
    by_rank = {r["run"]["metadata"]["cluster"]["rank"]: r for r in runs}
    for rank, run in by_rank.items():
        assert f"-rank{rank}-" in run["run"]["name"]
        assert run["summary"]["loss"] == rank + 0.5
        assert b"[rank" not in run["output"]


def test_a_failing_rank_fails_the_shared_run(workdir):
    procs = []
    for r in range(2):
        env = clean_env({"RANK": str(r), "WORLD_SIZE": "2", "SLURM_JOB_ID": "79"})
        procs.append(subprocess.Popen([str(CLI), "run", "--", "sh", "-c",
                                       f"sleep 0.{r}; exit {r * 5}"], cwd=workdir, env=env))
    assert [p.wait(timeout=60) for p in procs] == [0, 5]
    runs = finished_runs(workdir)
    assert len(runs) == 1 and runs[0]["run"]["state"] == "failed"
    by_rank = {r["rank"]: r for r in runs[0]["run"]["metadata"]["ranks"]}
    assert by_rank[1]["exit_code"] == 5 and by_rank[0]["exit_code"] == 0
