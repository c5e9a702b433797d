"""Parse-throughput bench helper.

  parse_bench.py gen N FILE          writes an N-line training log (10 line kinds)
  parse_bench.py rules FILE          writes the ten-rule config for metrictap
  parse_bench.py py keyvalue FILE    Python's re, Guild's keyvalue pattern, line by line
  parse_bench.py py rules FILE       Python's re, the same ten rules, first match wins

The Python side does what a Python tracker would: for each line, match, take
the named groups, turn values into floats, and keep the row (a dict).  It
prints "lines seconds"."""
import random
import re
import sys
import time

KINDS = [
    "train epoch={e} batch={b} loss={l:.5f} acc={a:.4f} lr={lr:.2e}",
    "valid epoch={e} val_loss={l:.5f} val_acc={a:.4f}",
    "[{b}] speed={s:.1f} samples/s gpu_mem={m}MB",
    "grad norm={g:.4f} clip={c:.2f}",
    "eval step {b}: bleu {a:.3f} rouge {l:.3f}",
    "sched warmup={w} lr {lr:.3e}",
    "mem rss {m} MiB peak {m2} MiB",
    "timing fwd {s:.3f}ms bwd {g:.3f}ms",
    "loss components: ce={l:.4f} kl={g:.4f} reg={c:.5f}",
    "INFO checkpoint saved to /ckpt/model-{b}.pt size={m} bytes",
]

RULES = [
    r"^train epoch=(?<epoch>\d+) batch=(?<batch>\d+) loss=(?<loss>\S+) acc=(?<acc>\S+) lr=(?<lr>\S+)",
    r"^valid epoch=(?<epoch>\d+) val_loss=(?<val_loss>\S+) val_acc=(?<val_acc>\S+)",
    r"^\[(?<batch>\d+)\] speed=(?<speed>[\d.]+) samples/s gpu_mem=(?<gpu_mem>\d+)MB",
    r"^grad norm=(?<grad_norm>\S+) clip=(?<clip>\S+)",
    r"^eval step (?<step>\d+): bleu (?<bleu>\S+) rouge (?<rouge>\S+)",
    r"^sched warmup=(?<warmup>\d+) lr (?<sched_lr>\S+)",
    r"^mem rss (?<rss>\d+) MiB peak (?<peak>\d+) MiB",
    r"^timing fwd (?<fwd_ms>[\d.]+)ms bwd (?<bwd_ms>[\d.]+)ms",
    r"^loss components: ce=(?<ce>\S+) kl=(?<kl>\S+) reg=(?<reg>\S+)",
    r"^INFO checkpoint saved to \S+ size=(?<ckpt_bytes>\d+) bytes",
]
AXES = [["epoch", "batch"], ["epoch"], ["batch"], [], ["step"], [], [], [], [], []]

# Guild's default output-scalar pattern, as a Python tracker would run it.
KEYVALUE = re.compile(r"(?:^|\s)([a-zA-Z_][\w.\-/]*)\s*[:=]\s*"
                      r"([-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf))(?=\s|,|$)")


def gen(n, path):
    rnd = random.Random(7)
    with open(path, "w") as f:
        for i in range(n):
            k = rnd.randrange(10) if i % 10 else 0
            f.write(KINDS[k].format(e=i // 20000, b=i, l=rnd.random(), a=rnd.random(),
                                    lr=rnd.random() * 1e-3, s=rnd.random() * 1000,
                                    m=rnd.randrange(1 << 20), m2=rnd.randrange(1 << 20),
                                    g=rnd.random(), c=rnd.random(), w=rnd.randrange(1000)) + "\n")


def write_rules(path):
    with open(path, "w") as f:
        f.write("rules:\n")
        for i, (r, ax) in enumerate(zip(RULES, AXES)):
            f.write(f"  - name: r{i}\n    pattern: '{r}'\n")
            if ax:
                f.write(f"    axes: [{', '.join(ax)}]\n")


def py_keyvalue(path):
    rows = 0
    t = time.process_time()
    with open(path) as f:
        for line in f:
            row = {}
            for k, v in KEYVALUE.findall(line):
                row[k] = float(v)
            if row:
                rows += 1
    return time.process_time() - t


def py_rules(path):
    pats = [re.compile(r.replace("(?<", "(?P<")) for r in RULES]
    rows = 0
    t = time.process_time()
    with open(path) as f:
        for line in f:
            for p in pats:
                m = p.search(line)
                if m:
                    row = {k: float(v) for k, v in m.groupdict().items() if v is not None}
                    rows += 1
                    break
    return time.process_time() - t


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(int(sys.argv[2]), sys.argv[3])
    elif cmd == "rules":
        write_rules(sys.argv[2])
    elif cmd == "py":
        path = sys.argv[3]
        secs = py_keyvalue(path) if sys.argv[2] == "keyvalue" else py_rules(path)
        with open(path) as f:
            n = sum(1 for _ in f)
        print(n, f"{secs:.4f}")


main()
