"""Issue 3 item 7: files the program writes that match --watch globs (or
files.watch) are tailed by the agent: fopen, open and openat, relative paths
after a chdir, truncation, append and rotation."""
import subprocess

import pytest

import victims as v

# Driven phase by phase through stdin, so the test can wait until the agent
# has read one phase before the next truncates or rotates the file.
WRITER_SRC = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(int fd, const char *s) { if (write(fd, s, strlen(s)) < 0) _exit(9); }
static void phase(const char *name)
{
    char line[64];
    printf("%s\n", name);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        _exit(8);
}

int main(void)
{
    mkdir("work", 0700);
    if (chdir("work") != 0)
        return 2;
    /* an appended file: only what this run adds is new */
    FILE *hist = fopen("history.txt", "a");
    fprintf(hist, "epoch: 7 loss: 0.1\n");
    fclose(hist);
    /* train.log with fopen + fprintf, by a relative path after chdir */
    FILE *log = fopen("train.log", "w");
    fprintf(log, "epoch: 1 loss: 0.9000 extra words to make it long\n");
    fprintf(log, "epoch: 2 loss: 0.8000 extra words to make it long\n");
    fflush(log);
    /* metrics.csv with openat + write */
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    int csv = openat(dir, "metrics.csv", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    put(csv, "step,acc\n1,0.50\n");
    close(csv);
    /* not watched: read-only opens and other names */
    close(open("train.log", O_RDONLY));
    FILE *other = fopen("other.txt", "w");
    fprintf(other, "epoch: 99 loss: 9\n");
    fclose(other);
    phase("phase1");

    /* truncation: the same FILE reopened with "w", shorter content */
    log = freopen("train.log", "w", log);
    fprintf(log, "epoch: 3 loss: 0.5\n");
    fflush(log);
    /* append with open(O_APPEND) */
    csv = open("metrics.csv", O_WRONLY | O_APPEND);
    put(csv, "2,0.60\n");
    close(csv);
    phase("phase2");

    /* rotation: rename, then a new file at the path */
    fclose(log);
    rename("train.log", "train.log.1");
    log = fopen("train.log", "a");
    fprintf(log, "epoch: 4 loss: 0.3\n");
    fprintf(log, "epoch: 5 loss: 0.2");   /* no newline: ended at the run's end */
    fclose(log);
    printf("done\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    return v.compile_c(WRITER_SRC, tmp_path_factory.mktemp("victims"), "file_writer")


def epochs(run):
    return [r["epoch"] for r in v.history(run) if "epoch" in r]


def test_watched_files_are_tailed_through_truncation_append_and_rotation(writer, tmp_path):
    store = tmp_path / "store"
    cwd = tmp_path / "run"
    cwd.mkdir()
    p = subprocess.Popen(v.wrapped([writer], "--watch", "work/*.log",
                                   "--watch", str(cwd / "work" / "metrics.csv")),
                         cwd=cwd, env=v.env_for(store), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"phase1\n"
        run = v.wait_for(lambda: (store / "latest-run").exists() and v.latest_run(store),
                         what="the run directory")
        v.wait_for(lambda: epochs(run) == [1, 2], what="epochs 1 and 2 from train.log")
        p.stdin.write(b"go\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"phase2\n"
        v.wait_for(lambda: epochs(run) == [1, 2, 3], what="epoch 3 after the truncation")
        p.stdin.write(b"go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0
    assert out == b"done\n" and err == b""

    # Each line exactly once: no re-read after truncation or rotation, and
    # other.txt (not matching) never tailed.
    assert epochs(run) == [1, 2, 3, 4, 5]
    log = str(cwd / "work" / "train.log")
    csv = str(cwd / "work" / "metrics.csv")
    watched = sorted(e["path"] for e in v.events(run, "file_watch"))
    assert watched == sorted([log, csv])
    assert [e["path"] for e in v.events(run, "file_truncated")] == [log]
    assert [e["path"] for e in v.events(run, "file_rotated")] == [log]
    files = {e["path"]: e for e in v.events(run, "file")}
    assert set(files) == {log, csv}
    phase1 = 2 * len("epoch: 1 loss: 0.9000 extra words to make it long\n")
    phase2 = len("epoch: 3 loss: 0.5\n")
    phase3 = len("epoch: 4 loss: 0.3\n") + len("epoch: 5 loss: 0.2")
    assert files[log]["bytes"] == phase1 + phase2 + phase3
    assert (files[log]["truncations"], files[log]["rotations"]) == (1, 1)
    assert files[csv]["bytes"] == len("step,acc\n1,0.50\n2,0.60\n")
    assert (files[csv]["truncations"], files[csv]["rotations"]) == (0, 0)
    # File lines are not console output.
    console = (run / "output.log").read_text()
    assert "epoch" not in console and "phase1" in console


def test_files_watch_variable_and_appended_file_starts_at_its_old_end(writer, tmp_path):
    """METRICTAP_FILES_WATCH works like --watch; a file that had contents
    before the run is tailed from where the program started appending, and a
    truncating open of a file with old contents reads it all."""
    store = tmp_path / "store"
    cwd = tmp_path / "run"
    (cwd / "work").mkdir(parents=True)
    (cwd / "work" / "metrics.csv").write_text("old,rows\n0,0\n")
    (cwd / "work" / "history.txt").write_text("epoch: 6 loss: 0.2\n")
    p = subprocess.run(v.wrapped([writer]), cwd=cwd, input=b"go\ngo\n", capture_output=True,
                       env=v.env_for(store, METRICTAP_FILES_WATCH="work/metrics.csv, "
                                                                   "work/history.txt"),
                       timeout=60)
    assert p.returncode == 0, p.stderr
    run = v.latest_run(store)
    files = {e["path"]: e for e in v.events(run, "file")}
    csv = str(cwd / "work" / "metrics.csv")
    hist = str(cwd / "work" / "history.txt")
    assert sorted(files) == sorted([csv, hist])
    # O_TRUNC in phase 1 emptied it, so everything the program wrote counts.
    assert files[csv]["bytes"] == len("step,acc\n1,0.50\n2,0.60\n")
    assert files[hist]["bytes"] == len("epoch: 7 loss: 0.1\n")
    assert epochs(run) == [7]  # not 6 (old), and train.log is not watched here


def test_nothing_watched_leaves_no_file_events(writer, tmp_path):
    store = tmp_path / "store"
    cwd = tmp_path / "run"
    cwd.mkdir()
    p = subprocess.run(v.wrapped([writer]), cwd=cwd, input=b"go\ngo\n", capture_output=True,
                       env=v.env_for(store), timeout=60)
    assert p.returncode == 0 and p.stdout == b"phase1\nphase2\ndone\n"
    run = v.latest_run(store)
    assert v.events(run, "file_watch") == [] and v.events(run, "file") == []
