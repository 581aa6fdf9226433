"""Meta-train MAML on Omniglot: python omniglot_train.py [--key value ...] (see default_config.yaml)."""
from pathlib import Path

from src.engine.training import TrainingRun
from src.model_utils import run_lock
from src.model_utils.config import load_config
from src.model_utils.errors import run_cli
from src.model_utils.outputs import remove_if_empty


def main(argv=None):
    cfg = load_config(argv)
    fresh = not Path(cfg.output_dir).exists()
    try:
        TrainingRun(cfg).run()
    finally:
        run_lock.release(cfg.output_dir)
        if fresh:  # a run that fails before writing anything leaves no empty folder behind
            remove_if_empty(cfg.output_dir)


if __name__ == "__main__":
    run_cli(main)
