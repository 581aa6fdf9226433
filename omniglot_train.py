"""Meta-train MAML on Omniglot: python omniglot_train.py [--key value ...] (see default_config.yaml)."""
from src.config import load_config
from src.errors import run_cli
from src.trainer import Trainer


def main(argv=None):
    Trainer(load_config(argv)).run()


if __name__ == "__main__":
    run_cli(main)
