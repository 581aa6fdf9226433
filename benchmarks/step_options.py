"""The meta-step options shared by bench_meta_step.py and bench_pytorch_step.py, so that runs of the
two with the same arguments time the same step."""


def add_step_options(parser):
    parser.add_argument("--order", choices=("first", "second"), default="second")
    for key, default in (("n_way", 5), ("k_spt", 1), ("k_qry", 15), ("task_num", 32), ("update_step", 5)):
        parser.add_argument(f"--{key}", type=int, default=default)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first (compiling) one")
