"""eval.py and predict.py take a checkpoint's own settings as defaults; a config file and the command line win."""
import json
import shutil

import pytest

from src.engine import checkpoint
from src.engine.loading import load_for_resume
from src.engine.loading import inference_settings
from src.model_utils.config import load_config
from src.model_utils.errors import UserError
from src.learner import Learner


@pytest.fixture
def ckpt(tmp_path):
    """A tiny 3-way checkpoint trained (so its config says) 10-shot with 10 queries, validated with 10, on
    redrawn images."""
    cfg = dict(load_config([]), n_way=3, num_filters=8, num_blocks=2, k_spt=10, k_qry=10, k_qry_test=10,
               update_step_test=7, redraw=True, output_dir="output/x")
    path = tmp_path / "tiny.ckpt"
    checkpoint.save(path, Learner(3, 8, 2), step=5, cfg=cfg)
    return path


def test_checkpoint_settings_are_the_defaults(ckpt):
    cfg, params, meta = inference_settings(["--ckpt", str(ckpt)])
    assert (cfg.n_way, cfg.num_filters, cfg.num_blocks, cfg.k_spt, cfg.update_step_test) == (3, 8, 2, 10, 7)
    assert cfg.redraw  # the images are read as the network was trained on them
    # The training-only k_qry comes along, so 10 + 10 is valid.
    assert (cfg.k_qry, cfg.k_qry_test) == (10, 10)
    assert cfg.output_dir == "output"  # not a network or task setting: the default stays
    assert meta["step"] == 5 and "conv0.weight" in params


def test_config_file_then_command_line_win(ckpt, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("update_step_test: 3\nk_qry_test: 5\n")
    cfg, _, _ = inference_settings(["--ckpt", str(ckpt), "--config_path", str(settings)])
    assert (cfg.update_step_test, cfg.k_qry_test, cfg.n_way) == (3, 5, 3)
    cfg, _, _ = inference_settings(["--ckpt", str(ckpt), "--config_path", str(settings),
                                               "--update_step_test", "1"])
    assert cfg.update_step_test == 1


def test_another_network_shape_is_refused(ckpt):
    with pytest.raises(UserError, match="trained with n_way=3 but the config has n_way=5: pass --n_way 3"):
        inference_settings(["--ckpt", str(ckpt), "--n_way", "5"])


def test_cost_is_stored(tmp_path):
    path = checkpoint.save(tmp_path / "c.ckpt", Learner(3, 8, 2), step=1, cfg=load_config([]),
                           cost={"train_seconds": 12.5, "cpu_seconds": 20.0})
    meta = checkpoint.read(path)[1]
    assert (meta["train_seconds"], meta["cpu_seconds"]) == (12.5, 20.0)
    assert json.loads(json.dumps(meta["config"]))["n_way"] == 5


def test_the_training_queries_do_not_bound_inference(tmp_path):
    """Inference draws k_spt + k_qry_test images of a character; the inherited training-only k_qry (5) bounds
    nothing: 16 shots and 4 queries fill the 20 drawers although 16 + 5 would not fit."""
    cfg = dict(load_config([]), n_way=3, num_filters=8, num_blocks=2, k_spt=5, k_qry=5, k_qry_test=5)
    path = checkpoint.save(tmp_path / "five.ckpt", Learner(3, 8, 2), step=1, cfg=cfg)
    loaded, _, _ = inference_settings(["--ckpt", str(path), "--k_spt", "16", "--k_qry_test", "4"])
    assert (loaded.k_spt, loaded.k_qry, loaded.k_qry_test) == (16, 5, 4)
    with pytest.raises(UserError, match="k_spt \\+ k_qry must be <= 20"):
        load_config(["--k_spt", "16", "--k_qry", "5"])


def test_a_refused_command_line_value_is_not_blamed_on_the_checkpoint(ckpt):
    with pytest.raises(UserError) as err:
        inference_settings(["--ckpt", str(ckpt), "--k_qry_test", "11"])
    assert str(err.value) == "k_spt + k_qry_test must be <= 20 (drawers per Omniglot character), got 21"


def test_a_resume_with_another_fine_tuning_step_size_validates_other_tasks(tmp_path):
    """Validation fine-tunes with update_lr: a resume that changes it may not replace best.ckpt, as for k_spt."""
    from tests.tiny_checkpoints import TINY, save_tiny_checkpoint

    save_tiny_checkpoint(tmp_path / "maml_step0000005.ckpt", "--update_lr", "0.4")
    (tmp_path / "best.ckpt").write_bytes((tmp_path / "maml_step0000005.ckpt").read_bytes())
    cfg = load_config([*TINY, "--update_lr", "0.2", "--meta_steps", "10"])
    with pytest.raises(UserError, match=r"other tasks than this run's \(update_lr 0.4 -> 0.2\)"):
        load_for_resume(tmp_path, cfg, print)


def test_eval_reads_the_redrawn_images_of_a_redraw_checkpoint(omniglot_npy_dir, tmp_path):
    """eval.py on a checkpoint trained with redraw reads omniglot_redrawn.npy (here the only cache: a copy of the
    originals' standing in for it); told --redraw false, it looks for omniglot.npy, absent, and says so."""
    from eval import main as eval_main
    from src.data.npy_cache import INDEX_NAME, NPY_NAME, REDRAWN_NAMES
    from tests.tiny_checkpoints import save_tiny_checkpoint

    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(omniglot_npy_dir / NPY_NAME, cache / REDRAWN_NAMES[0])
    index = json.loads((omniglot_npy_dir / INDEX_NAME).read_text())
    (cache / REDRAWN_NAMES[1]).write_text(json.dumps(index | {"redrawn": True}))
    ckpt = save_tiny_checkpoint(tmp_path / "redraw.ckpt", "--redraw", "true")
    settings = ["--ckpt", str(ckpt), "--data_path", str(tmp_path / "no_raw_data"), "--npy_dir", str(cache),
                "--eval_tasks", "2", "--eval_batch", "2"]
    eval_main(settings)
    report = json.loads((tmp_path / "redraw.ckpt.eval.json").read_text())
    assert report["redraw"] is True and report["tasks"] == 2
    with pytest.raises(UserError, match=f"has no {NPY_NAME}"):
        eval_main(settings + ["--redraw", "false", "--eval_report", str(tmp_path / "originals.json")])
