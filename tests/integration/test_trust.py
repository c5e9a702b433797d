"""Issue 15, items 1-4: other users cannot get in.  The attacker runs as user
nobody (setpriv), the victim as root (these tests need root, as CI has); what
the attacker plants is a link, a loose directory or a forged meeting place,
and each test checks that the program ran as it would have, the store refused
what it must with metrictap's own line, and nothing outside the store was
written or created."""
import os
import signal
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

import victims as v
from conftest import CLI, EXAMPLES, SHIM, clean_env, read_jsonl, run_dirs, wait_finished

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="the attacker is user nobody: needs root and setpriv")

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
TRAIN = str(EXAMPLES / "train_ok")


def as_nobody(*argv, cwd=None):
    subprocess.run([*NOBODY, *map(str, argv)], cwd=cwd, check=True, env=clean_env())


@pytest.fixture
def place():
    """A directory others can reach: base/ (0755, root's) holding shared/
    (1777, like /tmp), a victim file of root's and an elsewhere/ of nobody's."""
    base = Path(tempfile.mkdtemp(prefix="mt-trust-"))
    base.chmod(0o755)
    (base / "shared").mkdir()
    (base / "shared").chmod(0o1777)
    (base / "victim.txt").write_text("root's file\n")
    (base / "elsewhere").mkdir()
    os.chown(base / "elsewhere", 65534, 65534)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def snapshot(root, skip=None):
    """Every path below root with its owner, mode, size and link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if skip and (p == skip or skip in p.parents):
                continue
            st = p.lstat()
            out[str(p)] = (st.st_uid, stat.S_IMODE(st.st_mode), st.st_size,
                           os.readlink(p) if p.is_symlink() else None,
                           p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    return out


def plain(cwd):
    return subprocess.run([TRAIN], cwd=cwd, capture_output=True, env=clean_env())


def tracked(mode, cwd, env=None, args=()):
    e = clean_env(env)
    argv = [TRAIN]
    if mode == "run":
        argv = [str(CLI), "run", *args, "--", TRAIN]
    else:
        e["LD_PRELOAD"] = str(SHIM)
    return subprocess.run(argv, cwd=cwd, capture_output=True, env=e, timeout=60)


def assert_untracked_with_one_line(p, want, cwd):
    """The program ran as it does alone; one metrictap line said why not tracked."""
    ref = plain(cwd)
    assert p.returncode == ref.returncode and p.stdout == ref.stdout
    lines = [l for l in p.stderr.splitlines(keepends=True) if l.startswith(b"metrictap:")]
    assert len(lines) == 1, p.stderr
    assert want in lines[0] and lines[0].endswith(b"this run is not tracked\n"), lines[0]
    assert p.stderr.replace(lines[0], b"") == ref.stderr


@pytest.mark.parametrize("mode", ["run", "preload"])
def test_store_planted_by_another_user_is_refused(place, mode):
    """./metrictap pre-created by nobody in a shared directory, with output.log
    of the run to come linked to root's file and index.sqlite linked away."""
    shared = place / "shared"
    store = shared / "metrictap"
    as_nobody("mkdir", "-m", "777", "-p", store / "runs" / "uncategorized" / "evil1")
    as_nobody("ln", "-s", place / "victim.txt", store / "runs/uncategorized/evil1/output.log")
    as_nobody("ln", "-s", place / "elsewhere" / "db", store / "index.sqlite")
    before = snapshot(place)
    p = tracked(mode, shared, {"METRICTAP_ID": "evil1"})
    assert_untracked_with_one_line(p, b"refusing the run store: ./metrictap belongs to uid 65534",
                                   shared)
    assert snapshot(place) == before  # not a byte written, nothing created


def test_store_open_to_others_is_refused(place):
    """A shared METRICTAP_DIR (root's, mode 0777) in which nobody linked runs/
    and index.sqlite elsewhere: refused as ssh refuses a loose key file."""
    store = place / "shared" / "team-store"
    store.mkdir()
    store.chmod(0o777)
    as_nobody("ln", "-s", place / "elsewhere", store / "runs")
    as_nobody("ln", "-s", place / "elsewhere" / "db", store / "index.sqlite")
    before = snapshot(place)
    p = tracked("run", place / "shared", {"METRICTAP_DIR": str(store)})
    assert_untracked_with_one_line(p, b"is open to its group or to others (mode 0777", place / "shared")
    assert snapshot(place) == before
    assert list((place / "elsewhere").iterdir()) == []


def test_links_inside_a_private_store_are_not_followed(place, tmp_path):
    """A store of root's whose runs/<project> is a link (left from a time the
    store was loose): no run directory is made at its target."""
    store = tmp_path / "store"
    (store / "runs").mkdir(parents=True)
    (store / "runs" / "proj").symlink_to(place / "elsewhere")
    p = tracked("run", tmp_path, {"METRICTAP_DIR": str(store), "METRICTAP_PROJECT": "proj"})
    assert_untracked_with_one_line(p, b"runs/proj is a symbolic link", tmp_path)
    assert list((place / "elsewhere").iterdir()) == []


def make_run(store, cwd, run_id):
    p = tracked("run", cwd, {"METRICTAP_DIR": str(store), "METRICTAP_ID": run_id})
    assert p.returncode == 0 and b"metrictap:" not in p.stderr
    wait_finished(store / "runs" / "uncategorized" / run_id)
    # The agent closes the index (SQLite then removes its -wal) as it exits.
    v.wait_for(lambda: not (store / "index.sqlite-wal").exists(), what="the agent's exit")


@pytest.mark.parametrize("argv", [
    ["ls"], ["show", "good1"], ["tag", "good1", "+x"], ["rename", "good1", "n"],
    ["rm", "--yes", "good1"], ["reindex"], ["sync", "--all"], ["restore", "good1"],
])
def test_cli_commands_refuse_a_store_opened_to_others(place, argv):
    """A store that became writable by others: nobody swaps index.sqlite for a
    link to root's file; every command that reads or writes the store refuses
    it, and the victim, the link and the runs are as they were."""
    store = place / "shared" / "store"
    make_run(store, place / "shared", "good1")
    store.chmod(0o777)
    (store / "index.sqlite").rename(store / "index.old")
    as_nobody("ln", "-s", place / "victim.txt", store / "index.sqlite")
    before = snapshot(place)
    env = clean_env({"METRICTAP_DIR": str(store), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    p = subprocess.run([str(CLI), *argv], cwd=place / "shared", env=env, capture_output=True,
                       timeout=60)
    assert p.returncode != 0
    assert b"refusing the run" in p.stderr and b"mode 0777" in p.stderr, p.stderr
    assert snapshot(place) == before


def test_restore_refuses_a_run_directory_others_can_write(place, tmp_path):
    run = tmp_path / "store" / "runs" / "p" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"metadata": {"git": {"commit": "%s"}}}' % ("a" * 40))
    run.chmod(0o777)
    p = subprocess.run([str(CLI), "restore", str(run)], cwd=tmp_path, env=clean_env(),
                       capture_output=True, timeout=60)
    assert p.returncode == 1 and b"refusing the run" in p.stderr and b"mode 0777" in p.stderr


def fnv1a(text):
    h = 1469598103934665603
    for b in text.encode():
        h = ((h ^ b) * 1099511628211) & (2**64 - 1)
    return f"{h:016x}"


def test_forged_meeting_place_and_channel_do_not_capture_the_ranks(place, tmp_path):
    """nobody pre-creates the old predictable meeting place with an ERR answer
    of their own words, and an XDG_RUNTIME_DIR of theirs holding a meeting
    place whose OK answer names their own channel (a valid-looking ctl).  The
    two ranks still meet, in a place of root's, and are tracked in one run;
    the attacker's text is never printed and their channel gets nothing."""
    project, group = "trust-" + secrets.token_hex(4), "g-" + secrets.token_hex(4)
    h = fnv1a(project + "/" + group)
    old = Path(f"/dev/shm/metrictap-rdv-0-{h}")
    xdg = place / "shared" / "xdg"
    chan = xdg / "chan"
    as_nobody("mkdir", "-m", "777", "-p", old, chan, xdg / "metrictap" / f"rdv-{h}")
    try:
        ctl = bytearray(4096)
        ctl[0:4] = (0x4d54434c).to_bytes(4, "little")
        subprocess.run([*NOBODY, "sh", "-c",
                        f"cat > {chan}/ctl; echo 'ERR pwned-by-nobody' > {old}/answer;"
                        f" echo 'OK fake1 {chan} {chan}' > {xdg}/metrictap/rdv-{h}/answer"],
                       input=bytes(ctl), check=True)
        before = snapshot(place / "shared")
        store = tmp_path / "store"
        procs = []
        for r in range(2):
            env = clean_env({"RANK": str(r), "WORLD_SIZE": "2", "METRICTAP_GROUP": group,
                             "METRICTAP_PROJECT": project, "METRICTAP_DIR": str(store),
                             "XDG_RUNTIME_DIR": str(xdg)})
            procs.append(subprocess.Popen([str(CLI), "run", "--", "sh", "-c",
                                           f"echo 'rank {r} loss: {r}.5'"],
                                          cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))
        for r, p in enumerate(procs):
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0 and out == f"rank {r} loss: {r}.5\n".encode()
            assert err == b"", err  # no "pwned", no refusal: tracked
        runs = run_dirs(store)
        assert len(runs) == 1
        wait_finished(runs[0])
        log = (runs[0] / "output.log").read_text()
        assert "[rank 0] rank 0 loss: 0.5" in log and "[rank 1] rank 1 loss: 1.5" in log
        assert snapshot(place / "shared") == before  # no ring in their channel
    finally:
        shutil.rmtree(old, ignore_errors=True)


def test_privileges_dropped_inside_the_tree_are_recorded(tmp_path):
    """`metrictap run -- setpriv --reuid=nobody ... ./train`: refusing the
    other user is right, and the run says which process left it."""
    p = subprocess.run([str(CLI), "run", "--", *NOBODY, TRAIN], cwd=tmp_path,
                       env=clean_env(), capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == plain(tmp_path).stdout
    run = v.latest_run(tmp_path / "metrictap")
    wait_finished(run)
    ev = v.events(run, "untracked")
    assert len(ev) == 1, ev
    assert ev[0]["exe"] == shutil.which("setpriv") and ev[0]["euid"] == 65534
    assert ev[0]["pid"] > 0
    show = subprocess.run([str(CLI), "show", run.name], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True)
    assert show.returncode == 0
    assert "untracked the process became uid 65534" in show.stdout
    assert f"(pid {ev[0]['pid']}, {shutil.which('setpriv')})" in show.stdout


WRITER = r"""
import os, sys, time
log, go = sys.argv[1], sys.argv[2]
with open(log, "a") as f:
    f.write("loss: 1\n"); f.flush()
    while not os.path.exists(go):
        time.sleep(0.01)
    f.write("loss: 2\n"); f.flush()
"""


def test_watched_file_swapped_for_a_link_is_not_followed(place, tmp_path):
    """The program logs to a watched file in a directory others can write
    (0777, not sticky); once the agent follows it, nobody moves it away and
    puts a link to root's secret in its place.  The agent must not read the
    secret into the run; it records that it refused the path."""
    logs = place / "logs"
    logs.mkdir()
    logs.chmod(0o777)
    secret = place / "secret.txt"
    secret.write_text("secret_loss: 1234\n")
    secret.chmod(0o600)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    store = tmp_path / "store"
    log = logs / "train.log"
    p = subprocess.Popen([str(CLI), "run", "--watch", str(log), "--", "python3", str(script),
                          str(log), str(go)], cwd=tmp_path, env=v.env_for(store),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        run = v.wait_for(lambda: (store / "latest-run").exists() and v.latest_run(store),
                         what="the run")
        v.wait_for(lambda: [r.get("loss") for r in v.history(run)] == [1], what="loss 1")
        as_nobody("mv", log, logs / "train.log.1")
        as_nobody("ln", "-s", secret, log)
        go.write_text("")
        out, err = p.communicate(timeout=60)
    finally:
        go.write_text("")  # the writer stops waiting, whatever happened
        try:
            os.killpg(p.pid, signal.SIGKILL)  # metrictap and the writer below it
        except ProcessLookupError:
            pass
    assert p.returncode == 0 and err == b""
    wait_finished(run)
    assert "secret_loss" not in (run / "history.jsonl").read_text()
    refused = v.events(run, "file_refused")
    assert [e["path"] for e in refused] == [str(log)]
    assert "symbolic link" in refused[0]["reason"]
    assert secret.read_text() == "secret_loss: 1234\n"


def test_config_file_planted_in_a_shared_directory_is_refused(place):
    """./metrictap.yaml is found, not named: one of nobody's in a shared
    directory would choose where root's runs go (their directory here)."""
    shared = place / "shared"
    as_nobody("sh", "-c", f"echo 'dir: {place / 'elsewhere' / 'store'}' > {shared}/metrictap.yaml")
    before = snapshot(place)
    p = tracked("run", shared)
    assert_untracked_with_one_line(p, b"refusing ./metrictap.yaml: it belongs to uid 65534", shared)
    assert snapshot(place) == before
    # Named on purpose, it is the user's choice.
    p = tracked("run", shared, {"METRICTAP_CONFIG": str(shared / "metrictap.yaml")})
    assert b"metrictap:" not in p.stderr, p.stderr
    assert len(run_dirs(place / "elsewhere" / "store")) == 1
