"""Victim: Python output through print, sys.stderr.write and logging."""
import logging
import sys

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
log = logging.getLogger("train")
for epoch in range(1, 4):
    print(f"epoch {epoch} loss={1.0 / epoch:.4f} acc={0.5 + epoch / 10:.2f}")
    sys.stderr.write(f"progress {epoch}/3\n")
    log.info("val_loss=%.3f", 2.0 / epoch)
print("done", end="")
