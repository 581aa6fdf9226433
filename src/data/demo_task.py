"""Write one meta-test task of Omniglot as image folders, the input predict.py takes.

    python src/data/demo_task.py --data_path DIR --output_path TASK [--n_way 5] [--k_spt 1] [--k_qry 4]
                                 [--split finn|background] [--seed 0]

TASK/support/<alphabet>_<character>/ receives k_spt original 105x105 drawings of each of n_way
characters from the split's meta-test classes (never seen in training); TASK/query/ receives k_qry
other drawings of each, shuffled and named q000.png, q001.png, ...; TASK/answers.csv says which
class each query is. The images are copied unchanged from the Omniglot release.
"""
import csv
import io
import sys
from pathlib import Path

if not __package__:  # run as a script: make `import src...` resolve from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from src.data.release import NUM_DRAWERS, list_omniglot, read_source
from src.data.splits import SPLITS, split_class_ids
from src.model_utils.atomic_file import replacing
from src.model_utils.errors import ArgumentParser, UserError, run_cli
from src.model_utils.paths import path_type


def make_demo_task(data_path, output_path, n_way=5, k_spt=1, k_qry=4, split="finn", seed=0):
    """Returns {query file name: class name}. Refuses an output folder that already has content."""
    out = Path(output_path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder: pass another --output_path")
    if k_spt < 1 or k_qry < 1 or k_spt + k_qry > NUM_DRAWERS:
        raise UserError(f"k_spt and k_qry must be >= 1 with k_spt + k_qry <= {NUM_DRAWERS}, got {k_spt} and {k_qry}")
    if seed < 0:
        raise UserError(f"seed must be >= 0, got {seed}")
    listed = list_omniglot(data_path)
    test = split_class_ids([entry for entry, _ in listed], split)["test"]
    if not 2 <= n_way <= len(test):
        raise UserError(f"n_way must be between 2 and {len(test)} (the meta-test classes of split {split}), got {n_way}")
    rng = np.random.default_rng(seed)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {out} ({err.strerror or err}): pass an --output_path in a writable folder") from None
    with replacing(out, "pass an --output_path in a writable folder") as tmp:
        queries = []
        for class_id in rng.choice(test, n_way, replace=False):
            entry, drawings = listed[class_id]
            name = f"{entry['alphabet']}_{entry['character']}"
            chosen = [drawings[i] for i in rng.permutation(NUM_DRAWERS)[:k_spt + k_qry]]
            (tmp / "support" / name).mkdir(parents=True)
            for container, ref, where in chosen[:k_spt]:
                (tmp / "support" / name / Path(ref).name).write_bytes(read_source(container, ref, where))
            queries += [(name, drawing) for drawing in chosen[k_spt:]]
        (tmp / "query").mkdir()
        answers = {}
        for i, index in enumerate(rng.permutation(len(queries))):
            name, (container, ref, where) = queries[index]
            (tmp / "query" / f"q{i:03d}.png").write_bytes(read_source(container, ref, where))
            answers[f"q{i:03d}.png"] = name
        table = io.StringIO()
        csv.writer(table, lineterminator="\n").writerows([("query", "class"), *answers.items()])
        (tmp / "answers.csv").write_text(table.getvalue())
    return answers


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--data_path", required=True, type=path_type("--data_path"), help="Omniglot root (raw/*.zip or processed/ folders)")
    parser.add_argument("--output_path", required=True, type=path_type("--output_path"), help="new folder for support/, query/ and answers.csv")
    parser.add_argument("--n_way", type=int, default=5)
    parser.add_argument("--k_spt", type=int, default=1)
    parser.add_argument("--k_qry", type=int, default=4)
    parser.add_argument("--split", choices=SPLITS, default="finn", help="whose meta-test classes to draw from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    answers = make_demo_task(args.data_path, args.output_path, args.n_way, args.k_spt, args.k_qry, args.split, args.seed)
    print(f"wrote {args.n_way} support classes and {len(answers)} queries to {args.output_path}")


if __name__ == "__main__":
    run_cli(main)
