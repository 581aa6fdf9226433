"""Check every primitive of a backend's graphs against MindSpore 2.10's documented support (docs/op_support.md).

    python benchmarks/op_support.py --device_target Ascend [--conv_impl grouped] [--key value ...]

Builds, on CPU, the graphs the package runs with the formulations `--device_target`'s `auto` picks (or the
ones given): the meta-training step in both orders with the MAML++ options and the multi-step loss on,
evaluation's fine-tuning and scoring (AdaptAndScore) and the graph export.py writes (MINDIR). The primitives
are read from the compiled graphs (MindSpore's IR dumps after the front end, the graph every backend
receives) and from the exported MINDIR file. Prints one JSON line {"device_target", "conv_impl", "bn_impl",
"primitives": {name: count}} and exits 1 with one `error:` line per primitive the table does not accept
for the backend, or that breaks a constraint: Conv2D's group on Ascend, and no float64 tensor on GPU or
Ascend (MindSpore documents float64 for few operators there).
"""
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: `import src...` from the repo root

from src.model_utils.errors import run_cli  # noqa: E402 (imports no MindSpore: MS_DEV_SAVE_GRAPHS is set before it starts)
TABLE = REPO / "docs" / "op_support.md"
ACCEPTED = ("yes", "internal", "graph")
BACKENDS = ("CPU", "GPU", "Ascend")
# The settings of the graphs built: a small network (the primitives do not depend on its size) with every
# option that adds operators.
SMALL = ["--n_way", "3", "--num_filters", "4", "--num_blocks", "2", "--imgsz", "12", "--task_num", "2",
         "--update_step", "2", "--update_step_test", "2", "--learn_inner_lr", "true", "--per_step_bn", "true",
         "--msl_steps", "10", "--k_qry", "1", "--k_qry_test", "1"]
# A node of a dumped IR graph: `%12(name) = Conv2D(%10, %11) primitive_attrs: {...}` or `= PrimFunc_Mul(...)`.
IR_NODE = re.compile(r"^\s*%[\w.]+(?:\([^)]*\))? = (?:PrimFunc_)?([A-Za-z_]\w*)\((.*)$")
GROUP = re.compile(r"\bgroup: I64\((\d+)\)")
OUT_CHANNEL = re.compile(r"\bout_channel: I64\((\d+)\)")


def read_table(path=TABLE):
    """{primitive: {backend: (accepted, constraint)}} from the Markdown table's rows
    `| Primitive | CPU | GPU | Ascend | Constraints | Where stated |`; a cell is yes (documented), no,
    internal (no API docs: emitted by MindSpore's automatic differentiation) or graph (no device kernel)."""
    table = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not line.startswith("|") or cells[0] in ("Primitive", "") or set(cells[0]) <= set("-:"):
            continue
        name = cells[0].strip("`")
        table[name] = {backend: (cell in ACCEPTED, cells[4]) for backend, cell in zip(BACKENDS, cells[1:4])}
    return table


def ir_primitives(folder):
    """Counter of primitive names in the front end's final IR dumps of `folder`, the Conv2D-family nodes'
    (name, group, out_channel) and the names of the nodes with a float64 input or output."""
    names, convs, float64 = Counter(), [], set()
    for path in sorted(Path(folder).rglob("*_validate_*.ir")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line, types in zip(lines, lines[1:] + [""]):
            match = IR_NODE.match(line)
            if not match:
                continue
            name = match.group(1)
            names[name] += 1
            if types.strip().startswith(":") and "Float64" in types:
                float64.add(name)
            group = GROUP.search(match.group(2))
            if name.startswith("Conv2D") and group:
                out = OUT_CHANNEL.search(match.group(2))
                convs.append((name, int(group.group(1)), int(out.group(1)) if out else None))
    return names, convs, float64


def mindir_primitives(path):
    """Counter of operator names in a MINDIR file, and its Conv2D-family nodes' (name, group, out_channel)."""
    from mindspore.train import mind_ir_pb2
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(Path(path).read_bytes())
    names, convs = Counter(), []
    for graph in [model.graph, *model.functions]:
        for node in graph.node:
            name = node.op_type.split("::")[-1].split(":")[0]
            if name.startswith("PrimFunc_"):
                name = name[len("PrimFunc_"):]
            if not name or name[0].islower() or name.startswith("Constant"):
                continue
            names[name] += 1
            attrs = {attr.name: attr for attr in node.attribute}
            if name.startswith("Conv2D") and "group" in attrs:
                out = attrs.get("out_channel")
                convs.append((name, int(attrs["group"].i), int(out.i) if out is not None else None))
    return names, convs


def violations(target, names, convs, float64, table):
    """One message per primitive the table does not accept for `target`, per grouped convolution Ascend cannot
    run, and per primitive computing in float64 on GPU or Ascend."""
    problems = [f"{name} is in the {target} graphs but {TABLE.name} does not document it for {target}: check "
                f"MindSpore's support for it and add it to the table, or avoid it"
                for name in sorted(names) if not table.get(name, {}).get(target, (False, ""))[0]]
    if target != "CPU":
        problems += [f"{name} computes in float64 in the {target} graphs: compute in float32 (or on the host)"
                     for name in sorted(float64)]
    if target == "Ascend":
        for name, group, out_channel in sorted(set(convs)):
            if group > 1 and out_channel != group:
                problems.append(f"{name} with group {group} and {out_channel} output channels: Ascend runs group > 1 "
                                "only depthwise (in = out channels = group); use conv_impl matmul or per_task")
    return problems


def build_graphs(argv, folder):
    """Compile the package's graphs with the settings `argv` (IR dumps go to `folder`); the MINDIR's path."""
    import numpy as np
    import mindspore as ms

    from src.engine.loading import SINGLE_IMAGE
    from src.maml import AdaptAndScore, build_maml
    from src.meta_optimizer import MetaOptimizer
    from src.model_utils.config import load_config
    from src.multi_step_loss import step_loss_weights
    from step_options import synthetic_batch
    from export import graph_inputs

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")  # the graphs are built here; the formulations are those of cfg.device_target
    cfg = load_config(argv)
    batch = [ms.Tensor(a) for a in synthetic_batch(cfg.n_way, cfg.k_spt, cfg.k_qry, cfg.task_num,
                                                   np.random.default_rng(0), cfg.imgsz)]
    weights = ms.Tensor(step_loss_weights(cfg.update_step, cfg.msl_steps, 0))
    for first_order in (False, True):
        cfg["first_order"] = first_order
        meta_optimizer = MetaOptimizer(cfg)
        meta_optimizer.train_step(*batch, weights)
        meta_optimizer.train_step(*batch)
    maml = build_maml(cfg)
    AdaptAndScore(maml, cfg.update_step_test)(*batch)
    AdaptAndScore(maml, cfg.update_step_test).predict(*batch[:3])
    cfg.update(SINGLE_IMAGE)  # export.py's default
    exported = build_maml(cfg)
    path = Path(folder) / "graph"
    ms.export(exported, *graph_inputs(cfg, 0, 0), cfg.update_step_test, file_name=str(path), file_format="MINDIR")
    return path.with_suffix(".mindir")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as folder:
        # Read when MindSpore starts: the dumps of every graph compiled in this process, of the one pass read
        # (the front end's last, validate; dumping every pass would multiply the space and time).
        os.environ.update(MS_DEV_SAVE_GRAPHS="1", MS_DEV_SAVE_GRAPHS_PATH=str(Path(folder) / "ir"),
                          MS_DEV_DUMP_IR_PASSES="validate")
        from src.model_utils.config import load_config
        from src.formulation import resolve

        cfg = load_config(SMALL + argv)
        conv_impl, bn_impl = resolve(cfg)
        mindir = build_graphs(SMALL + argv, folder)
        names, convs, float64 = ir_primitives(Path(folder) / "ir")
        exported, exported_convs = mindir_primitives(mindir)
    names.update(exported)
    problems = violations(cfg.device_target, names, convs + exported_convs, float64, read_table())
    print(json.dumps({"device_target": cfg.device_target, "conv_impl": conv_impl, "bn_impl": bn_impl,
                      "primitives": dict(sorted(names.items())), "exported": sorted(exported),
                      "float64": sorted(float64)}))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.exit(run_cli(main))
