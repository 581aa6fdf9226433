"""Property-based fuzzing of the settings layer (Hypothesis): random YAML documents, values and option lists
each end in exit code 0 or in exit code 2 with one `error:` line, never in a traceback, and quickly.

Run in-process through run_cli, as every entry point runs, with a bounded number of examples."""
import contextlib
import io
import string
import time

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from src.model_utils.config import DEFAULT_CONFIG, load_config
from src.model_utils.errors import LINE_CHARS, run_cli

KEYS = sorted(yaml.safe_load(DEFAULT_CONFIG.read_text()))
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=40), st.text(alphabet=string.digits + "-+.e_", max_size=40),
                    st.sampled_from(["", "inf", "-1", "0", "1e999", "true", "CPU", "finn", "a\nb", "a\0b", "n" * 300]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                            max_size=3), max_leaves=6)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12), st.integers(), st.booleans())


def outcome(argv):
    """(exit code, stderr) of load_config(argv) run as the entry points run it; any other exception propagates."""
    err = io.StringIO()
    start = time.time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            run_cli(lambda args: load_config(args), argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
    assert time.time() - start < 10, argv
    return code, err.getvalue()


def check(code, stderr):
    assert code in (0, 2), (code, stderr)
    if code == 2:
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < LINE_CHARS + 100, stderr
    else:  # settings accepted, or --help (the usage, on standard output)
        assert stderr == ""


@FUZZ
@given(document=st.dictionaries(keys, values, max_size=6))
def test_random_yaml_mappings(tmp_path, document):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(document, allow_unicode=True))
    check(*outcome(["--config_path", str(cfg)]))


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_random_yaml_text(tmp_path, text):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(text.encode("utf-8", "surrogatepass") if text.isascii() else text.encode("latin-1", "replace"))
    check(*outcome(["--config_path", str(cfg)]))


@FUZZ
@given(text=st.builds(lambda anchor, body: f"split: &{anchor} {body}\nn_way: *{anchor}\n",
                      st.text(alphabet=string.ascii_letters, min_size=1, max_size=5), st.text(max_size=30)))
def test_yaml_with_aliases(tmp_path, text):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    check(*outcome(["--config_path", str(cfg)]))


options = st.one_of(st.sampled_from([f"--{key}" for key in KEYS] + ["--config_path", "--help", "-h", "--", "-"]),
                    st.text(max_size=12), st.sampled_from([f"--{key}=" for key in KEYS]).flatmap(
                        lambda head: st.text(max_size=12).map(lambda tail: head + tail)))


@FUZZ
@given(argv=st.lists(st.one_of(options, scalars.map(str)), max_size=8))
def test_random_option_lists(argv):
    check(*outcome([arg.replace("\0", "") for arg in argv]))  # a command line cannot hold a NUL
