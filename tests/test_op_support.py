"""Every primitive of each backend's graphs (training in both orders with the MAML++ options, evaluation, the
exported MINDIR), built on CPU with that backend's `auto` formulations, is one docs/op_support.md accepts for
the backend; the check fails for a grouped convolution forced onto Ascend and for an operator the table lacks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.formulation import AUTO

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "op_support.py"
sys.path.insert(0, str(SCRIPT.parent))
from op_support import BACKENDS, read_table, violations  # noqa: E402


def _run(*args, script=SCRIPT):
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=1800)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    return proc.returncode, json.loads(proc.stdout.splitlines()[-1]) if proc.stdout.strip() else None, errors


def test_table_lists_every_backend_for_every_primitive():
    table = read_table()
    assert {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "Adam", "ReduceMean", "Rsqrt"} <= set(table)
    assert all(set(row) == set(BACKENDS) for row in table.values())
    assert "depthwise" in table["Conv2D"]["Ascend"][1]


def test_constraints_name_what_breaks_them():
    table = {"Conv2D": {backend: (True, "") for backend in BACKENDS}, "Cast": {backend: (True, "") for backend in BACKENDS}}
    grouped = [("Conv2D", 4, 256)]  # 4 tasks of 64 channels: not depthwise
    depthwise = [("Conv2D", 8, 8)]
    assert violations("CPU", {"Conv2D": 1}, grouped, set(), table) == []
    assert violations("Ascend", {"Conv2D": 1}, depthwise, set(), table) == []
    (problem,) = violations("Ascend", {"Conv2D": 1}, grouped, set(), table)
    assert "group 4" in problem and "matmul" in problem
    (problem,) = violations("GPU", {"Cast": 1}, [], {"Cast"}, table)
    assert "float64" in problem
    (problem,) = violations("GPU", {"Erf": 1}, [], set(), table)
    assert problem.startswith("Erf is in the GPU graphs")


@pytest.mark.slow
@pytest.mark.parametrize("target", BACKENDS)
def test_every_primitive_of_a_backends_graphs_is_accepted_for_it(target):
    code, result, errors = _run("--device_target", target)
    assert (code, errors) == (0, []), errors
    assert (result["conv_impl"], result["bn_impl"]) == AUTO[target]
    # The graphs hold what the check is about: convolutions, their gradients (training), the exported graph.
    convolution = {"Conv2D", "Conv2DBackpropFilter"} if AUTO[target][0] != "matmul" else {"BatchMatMul"}
    assert convolution | {"Adam"} <= set(result["primitives"])
    assert ("Conv2D" in result["exported"]) == (AUTO[target][0] != "matmul")
    assert ("BatchNorm" in result["primitives"]) == (AUTO[target][1] == "fused")


EXTRA_OP = '''
import sys
sys.path.insert(0, {benchmarks!r})
import op_support


def cross_entropy_and_erf(logits, labels):
    erf = ops.stop_gradient(ops.erf(logits)).mean(axis=(-2, -1))
    return cross_entropy(logits, labels) + (erf - erf)


build_graphs = op_support.build_graphs


def build_graphs_with_erf(argv, folder):
    global ops, cross_entropy  # imported here, once op_support has set up MindSpore's graph dumps
    from mindspore import ops
    from src.loss import cross_entropy
    import src.maml
    src.maml.cross_entropy = cross_entropy_and_erf
    return build_graphs(argv, folder)


op_support.build_graphs = build_graphs_with_erf
sys.exit(op_support.run_cli(op_support.main))
'''


@pytest.mark.slow
def test_a_grouped_convolution_forced_on_ascend_and_an_operator_the_table_lacks_fail(tmp_path):
    """Ascend with the grouped convolution and an Erf added to the loss (as erf - erf, without gradient): each is named,
    and nothing else is."""
    script = tmp_path / "extra_op.py"
    script.write_text(EXTRA_OP.format(benchmarks=str(SCRIPT.parent)))
    code, result, errors = _run("--device_target", "Ascend", "--conv_impl", "grouped", script=script)
    assert code == 1 and "Erf" in result["primitives"]
    grouped = [error for error in errors if "with group" in error]
    assert grouped and all("with group 2" in error and "only depthwise" in error for error in grouped), errors
    (other,) = [error for error in errors if error not in grouped]
    assert other.startswith("error: Erf is in the Ascend graphs"), errors
