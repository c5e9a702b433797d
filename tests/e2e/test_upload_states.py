"""`ls` and `show` report each backend's upload state (issue 17): TensorBoard
and an offline W&B run are `written`, a backend that could not write is
`failed: <why>`, several backends are listed by name."""
import json
import subprocess

from conftest import BUILD, METRICTAP, agent_done, metrictap_env, run_dirs, wait_until

TRAIN_OK = BUILD / "examples" / "train_ok"


def ls_upload(store):
    rows = json.loads(subprocess.run([str(METRICTAP), "ls", "--json"], env=metrictap_env(store),
                                     capture_output=True, text=True, check=True).stdout)
    return [r["upload"] for r in rows]


def run_to(tmp, store, to, **extra):
    env = metrictap_env(store, **{"WANDB_MODE": "offline", "WANDB_DIR": tmp / "wb",
                                  "METRICTAP_TENSORBOARD_DIR": tmp / "tb", **extra})
    p = subprocess.run([str(METRICTAP), "run", "--to", to, "--project", "st", "--", str(TRAIN_OK),
                        "--epochs", "3", "--delay-ms", "1"], env=env, capture_output=True,
                       timeout=120, cwd=tmp)
    assert p.returncode == 0, p.stderr
    (run_dir,) = run_dirs(store)
    for be in to.split(","):
        assert wait_until(lambda: agent_done(run_dir, be), 60)
    return run_dir


def test_file_backends_show_written(tmp_path, store):
    run_dir = run_to(tmp_path, store, "tensorboard,wandb")
    assert ls_upload(store) == ["tensorboard written; wandb written"]
    show = subprocess.run([str(METRICTAP), "show", run_dir.name], env=metrictap_env(store),
                          capture_output=True, text=True, check=True).stdout
    assert "  tensorboard  written" in show and "  wandb        written" in show, show
    table = subprocess.run([str(METRICTAP), "ls"], env=metrictap_env(store, COLUMNS="200"),
                           capture_output=True, text=True, check=True).stdout
    assert "UPLOAD" in table.splitlines()[0] and "tensorboard written" in table, table


def test_a_backend_that_could_not_write_shows_failed(tmp_path, store):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    run_to(tmp_path, store, "tensorboard", METRICTAP_TENSORBOARD_DIR=tmp_path / "blocker" / "tb")
    (state,) = ls_upload(store)
    assert state.startswith("failed: ") and "blocker" in state, state
