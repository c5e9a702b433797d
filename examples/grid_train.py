#!/usr/bin/env python3
"""A toy trainer for sweeps: prints train_* lines every few steps and eval_*
lines every epoch, as a real one would.  Deterministic: the accuracy it
reaches depends on --lr, --batch and --optimizer (best near lr 0.01, adam,
batch 64), so a grid over them has one best run."""
import argparse
import math
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--optimizer", default="adam")
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--steps-per-epoch", type=int, default=20)
p.add_argument("--delay-ms", type=int, default=0)
a = p.parse_args()

quality = {"adam": 1.0, "adamw": 0.97, "sgd": 0.85}.get(a.optimizer, 0.8)
quality *= math.exp(-(math.log10(a.lr) + 2) ** 2 / 2)        # best at 1e-2
quality *= 1.0 if a.batch == 64 else 0.96
ceiling = 0.5 + 0.45 * quality
step = 0
print(f"training with {a.optimizer}, learning rate {a.lr}, batch size {a.batch}", flush=True)
for epoch in range(1, a.epochs + 1):
    for _ in range(a.steps_per_epoch):
        step += 1
        if step % 5 == 0:
            t = step / (a.epochs * a.steps_per_epoch)
            loss = 2.3 * math.exp(-3 * quality * t) + 0.05 * math.sin(step)
            print(f"step={step} train_loss={loss:.4f} train_accuracy={ceiling * (1 - math.exp(-4 * t)):.4f}",
                  flush=True)
        if a.delay_ms:
            time.sleep(a.delay_ms / 1000)
    acc = ceiling * (1 - math.exp(-1.2 * epoch))
    print(f"epoch={epoch} eval_loss={2.3 * (1 - acc):.4f} eval_accuracy={acc:.4f}", flush=True)
print(f"test_accuracy={ceiling * 0.98:.4f}", flush=True)
sys.exit(0)
