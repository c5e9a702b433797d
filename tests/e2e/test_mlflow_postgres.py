"""Team scale: MLflow on PostgreSQL (Debian's postgresql, a cluster of the
test's own on 127.0.0.1 and a private socket directory, torn down after),
16 runs started at once, each printing 2,000 rows, through the fault proxy
failing a share of the requests: every point is in PostgreSQL exactly once
and every run is FINISHED."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import pytest

from conftest import (BUILD, METRICTAP, FaultProxy, MlflowServer, agent_done, expected_points,
                      free_port, metrictap_env, run_dirs, wait_until)

psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary is missing from the test venv "
                               "(tests/e2e/requirements.txt)")

TRAIN_OK = BUILD / "examples" / "train_ok"
RUNS, ROWS = 16, 2000


def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or \
        ([shutil.which(name)] if shutil.which(name) else [])
    return found[-1] if found else None


class Postgres:
    """A throwaway cluster.  PostgreSQL refuses to run as root: then it runs
    as user nobody (setpriv), in a directory nobody owns."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mt-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.sock.mkdir()
        self.log = self.dir / "pg.log"
        self.as_user = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for p in (self.dir, self.sock):
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
            self.as_user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

    def run(self, *cmd):
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.dir)}
        return subprocess.run([*self.as_user, *cmd], env=env, capture_output=True, text=True,
                              timeout=120, cwd=self.dir)

    def start(self):
        r = self.run(pg_bin("initdb"), "-D", str(self.data), "-U", "mlflow", "--auth=trust",
                     "-E", "UTF8", "--no-sync")
        assert r.returncode == 0, r.stdout + r.stderr
        opts = (f"-h 127.0.0.1 -p {self.port} -k {self.sock} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200")
        r = self.run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w",
                     "-t", "120", "start")
        assert r.returncode == 0, r.stdout + r.stderr + self.log.read_text()
        c = self.connect("postgres")
        c.autocommit = True
        c.cursor().execute("CREATE DATABASE mlflow")
        c.close()

    def connect(self, db="mlflow"):
        return psycopg2.connect(host="127.0.0.1", port=self.port, user="mlflow", dbname=db)

    @property
    def uri(self):
        return f"postgresql+psycopg2://mlflow@127.0.0.1:{self.port}/mlflow"

    def stop(self):
        if self.data.exists():
            self.run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_mlflow(tmp_path_factory):
    if not pg_bin("initdb") or not pg_bin("pg_ctl"):
        pytest.skip("PostgreSQL is not installed (Debian's postgresql: scripts/deps.sh test)")
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: PostgreSQL cannot be started as another user")
    pg = Postgres()
    srv = None
    try:
        pg.start()
        srv = MlflowServer(tmp_path_factory.mktemp("mlflow-pg"), store_uri=pg.uri)
        # a team's server: more than one worker, and a connection pool for
        # 16 clients at once (the default 5 + 10 makes requests queue)
        srv.workers = 2
        srv.extra_env = {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "20",
                         "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "20"}
        srv.start()
        yield pg, srv
    finally:
        if srv:
            srv.kill()
        pg.stop()


def db_points(pg, mlflow_run_id):
    """{key: Counter((step, timestamp, value))} as PostgreSQL holds them."""
    out = {}
    with pg.connect() as c, c.cursor() as cur:
        cur.execute("SELECT key, step, timestamp, value, is_nan FROM metrics WHERE run_uuid = %s",
                    (mlflow_run_id,))
        for key, step, ts, value, is_nan in cur.fetchall():
            v = "NaN" if is_nan else float(value)
            out.setdefault(key, Counter())[(int(step), int(ts), v)] += 1
    return out


def test_16_runs_at_once_through_a_failing_path_land_once_each(pg_mlflow, tmp_path):
    pg, srv = pg_mlflow
    proxy = FaultProxy(srv.port)
    proxy.fail_random(0.1, ["500", "drop", "close"], seed=3)
    url = f"http://127.0.0.1:{proxy.port}"
    store = tmp_path / "metrictap"
    cmd = [str(TRAIN_OK), "--epochs", str(ROWS), "--delay-ms", "0"]
    env = metrictap_env(store, url, METRICTAP_UPLOAD_BACKOFF_MAX="1s")
    try:
        procs = [subprocess.Popen([str(METRICTAP), "run", "--project", "e2e-pg", "--", *cmd],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(RUNS)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        dirs = run_dirs(store)
        assert len(dirs) == RUNS
        # each agent flushes for a bounded time; what is left goes by sync
        assert wait_until(lambda: all(agent_done(d) for d in dirs), 120), "agents still uploading"
        r = subprocess.run([str(METRICTAP), "sync", "--all", "-j", str(RUNS)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert sum(proxy.count("", a) for a in ("500", "drop", "close")) > 0
    finally:
        proxy.close()
    with pg.connect() as c, c.cursor() as cur:
        cur.execute("SELECT r.run_uuid, r.status, t.value FROM runs r JOIN tags t ON "
                    "t.run_uuid = r.run_uuid AND t.key = 'metrictap.run_id' WHERE r.lifecycle_stage = 'active'")
        by_mt = {}
        for run_uuid, status, mt_id in cur.fetchall():
            by_mt.setdefault(mt_id, []).append((run_uuid, status))
    for d in dirs:
        mt_id = d.name
        assert (d / "upload" / "mlflow.json").exists()
        assert len(by_mt.get(mt_id, [])) == 1, (mt_id, by_mt.get(mt_id))
        run_uuid, status = by_mt[mt_id][0]
        assert status == "FINISHED", (mt_id, status)
        want = {k: Counter({(s, t, "NaN" if v == "NaN" else float(v)): n for (s, t, v), n in c.items()})
                for k, c in expected_points(d).items()}
        got = db_points(pg, run_uuid)
        assert sum(want["loss"].values()) == ROWS
        assert got == want, {k: (sum(want.get(k, Counter()).values()), sum(got.get(k, Counter()).values()))
                             for k in set(want) | set(got) if want.get(k) != got.get(k)}
