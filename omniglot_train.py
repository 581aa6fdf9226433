"""Meta-train MAML on Omniglot: python omniglot_train.py [--key value ...] (see default_config.yaml)."""
from pathlib import Path

from src import run_lock
from src.config import load_config
from src.errors import run_cli
from src.outputs import remove_if_empty
from src.trainer import Trainer


def main(argv=None):
    cfg = load_config(argv)
    fresh = not Path(cfg.output_dir).exists()
    try:
        Trainer(cfg).run()
    finally:
        run_lock.release(cfg.output_dir)
        if fresh:  # a run that fails before writing anything leaves no empty folder behind
            remove_if_empty(cfg.output_dir)


if __name__ == "__main__":
    run_cli(main)
