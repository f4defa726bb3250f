"""run_ood_segmentation.py end to end on the tiny preset and the synthetic benchmark (CPU, a few steps)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "run_ood_segmentation.py"
sys.path.insert(0, str(REPO))

import run_ood_segmentation  # noqa: E402


TINY = [
    "--preset", "tiny",
    "--random_clip_init",
    "--config_overrides", "crop_size=64,stride=48,inference_mode=whole",
    "--train_dataset", "synthetic",
    "--synthetic_height", "64",
    "--synthetic_width", "128",
    "--synthetic_num_examples", "16",
    "--per_device_train_batch_size", "2",
    "--learning_rate", "1e-3",
    "--warmup_steps", "0",
    "--report_to", "none",
    "--use_cpu",
    "--dataloader_num_workers", "0",
    "--seed", "0",
    "--disable_tqdm", "true",
    "--logging_steps", "1",
]  # fmt: skip


def script_env(**extra):
    env = dict(os.environ, **extra, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def run_script(*args, launcher=(sys.executable,), env=None, timeout=600):
    result = subprocess.run(
        [*launcher, str(SCRIPT), *args], env=env or script_env(), cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def trained_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_train_then_evaluate_writes_model_results_plots_and_overlays(tmp_path):
    objects = tmp_path / "objects"
    objects.mkdir()
    from PIL import Image

    cut_out = Image.new("RGBA", (24, 24), (250, 0, 250, 0))
    cut_out.paste((250, 0, 250, 255), (4, 4, 20, 20))
    cut_out.save(objects / "box.png")
    tmp_path = tmp_path / "run"
    output = run_script(
        *TINY, "--output_dir", str(tmp_path), "--do_train", "--max_steps", "3", "--do_eval",
        "--ood_objects_folder", str(objects), "--paste_probability", "1.0",
        "--eval_benchmarks", "synthetic", "--max_eval_samples", "3", "--num_overlays", "2", "--eval_scale", "128", "64",
    )  # fmt: skip
    results = json.loads((tmp_path / "eval_results.json").read_text())
    row = results["synthetic:anomaly"]
    assert row["frames"] == 3
    for key in ("auroc", "average_precision", "fpr95"):
        assert 0.0 <= row[key] <= 1.0
    assert "| synthetic:anomaly | 3 |" in output
    folder = tmp_path / "eval" / "synthetic_anomaly"
    panels = sorted(folder.glob("overlay_*.png"))
    assert len(panels) == 2
    with Image.open(panels[0]) as panel:  # image | heat map | best-F1 mask | ground truth
        assert panel.mode == "RGB" and panel.width > 4 * panel.height
    assert (folder / "synthetic_anomaly_pr.png").is_file() and (folder / "synthetic_anomaly_roc.png").is_file()
    assert not list(folder.glob(".scores-*"))
    with Image.open(tmp_path / "training_progress.png") as plot:  # loss terms and learning rate of the 3 steps
        assert plot.format == "PNG" and plot.width > plot.height
    card = (tmp_path / "README.md").read_text()  # the model card carries the evaluation and the recipe
    assert "model-index:" in card and f"value: {row['average_precision']:.6g}" in card and "- steps: 3" in card
    # the saved folder is a complete model + processor that a pipeline loads
    from transformers import pipeline

    import tdos  # noqa: F401  (registers the ood-segmentation task)

    size = json.loads((tmp_path / "preprocessor_config.json").read_text())["size"]
    assert (size["longest_edge"], size["shortest_edge"]) == (128, 64)  # --eval_scale is the saved processor's scale
    segmenter = pipeline("ood-segmentation", model=str(tmp_path), device="cpu", trust_remote_code=True)
    prediction = segmenter(Image.new("RGB", (128, 64), (90, 90, 90)), threshold=0.0, components=True, top_k=1)
    assert prediction["anomaly_score"].shape == (64, 128)
    (component,) = prediction["components"]  # the saved tokenizer names it with a word of the OOD bands
    assert component.area == 64 * 128 and len(component.words) == 1


def test_the_readme_demo_script_runs_end_to_end_in_short(tmp_path):
    """scripts/demo.sh exactly as the README runs it (set-up included), with 4 training steps and 3 eval images."""
    env = script_env(DEMO_STEPS="4", DEMO_EVAL_SAMPLES="3", TDOS_VENV=sys.prefix)
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh"), str(tmp_path / "demo")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| synthetic:anomaly | 3 |" in result.stdout
    assert json.loads((tmp_path / "demo" / "eval_results.json").read_text())["synthetic:anomaly"]["frames"] == 3
    assert (tmp_path / "demo" / "model.safetensors").is_file()
    assert (tmp_path / "demo" / "eval" / "synthetic_anomaly" / "synthetic_anomaly_pr.png").is_file()
    assert f"PR/ROC curves and overlay panels: {tmp_path / 'demo'}/eval/synthetic_anomaly/" in result.stdout


def test_rn50_backbone_trains_and_evaluates_through_the_script(tmp_path):
    arguments = [argument if argument != "tiny" else "tiny-rn50" for argument in TINY]
    run_ood_segmentation.main(
        [*arguments, "--output_dir", str(tmp_path), "--do_train", "--max_steps", "2", "--do_eval",
         "--eval_benchmarks", "synthetic", "--max_eval_samples", "1", "--num_overlays", "0"]
    )  # fmt: skip
    results = json.loads((tmp_path / "eval_results.json").read_text())
    assert results["synthetic:anomaly"]["frames"] == 1
    from tdos import TDOSForOODSegmentation

    assert TDOSForOODSegmentation.from_pretrained(tmp_path).config.backbone == "clip-rn50"


def test_two_process_cpu_ddp_trains_and_keeps_replicas_equal(tmp_path):
    launcher = (
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
    )  # fmt: skip
    output = run_script(
        *TINY, "--output_dir", str(tmp_path), "--do_train", "--max_steps", "2",
        launcher=launcher, env=script_env(ACCELERATE_USE_CPU="1"),
    )  # fmt: skip
    assert "world size 2" in output
    assert "trainable weights identical on all 2 processes" in output
    # the simple FPN's trainable BatchNorm is synchronised (as released): its running statistics agree across processes
    assert "1 BatchNorm layers converted to SyncBatchNorm" in output
    assert "batch-norm statistics identical on all 2 processes" in output
    assert (tmp_path / "model.safetensors").is_file()


def test_sigkill_and_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    arguments = [*TINY, "--do_train", "--max_steps", "8", "--save_steps", "2"]
    reference = tmp_path / "reference"
    run_script(*arguments, "--output_dir", str(reference))

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *arguments, "--output_dir", str(interrupted)],
        env=script_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (interrupted / "checkpoint-4" / "trainer_state.json").exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model.safetensors").exists()

    output = run_script(*arguments, "--output_dir", str(interrupted), "--resume_from_checkpoint", "True")
    assert "Continuing training from checkpoint" in output or "checkpoint-" in output
    expected, resumed = trained_weights(reference), trained_weights(interrupted)
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    arguments = [*TINY, "--do_train", "--max_steps", "6", "--save_steps", "2", "--output_dir", str(tmp_path)]
    original = run_ood_segmentation.TDOSTrainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        if self.state.global_step >= 3:
            inputs = dict(inputs, pixel_values=inputs["pixel_values"] * float("nan"))
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(run_ood_segmentation.TDOSTrainer, "compute_loss", poisoned)
    with pytest.raises(SystemExit, match=r"training stopped at step 3: non-finite loss.*checkpoint-2"):
        run_ood_segmentation.main(arguments)
    assert (tmp_path / "checkpoint-2" / "model.safetensors").is_file()
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize(
    "extra, error, message",
    [
        (["--eval_benchmarks", "fishyscapes_lf=/no/such/folder", "--do_eval"], FileNotFoundError, "/no/such/folder"),
        (["--eval_benchmarks", "mars_rover", "--do_eval"], ValueError, "unknown benchmark 'mars_rover'"),
        (["--do_train", "--fp16"], ValueError, "--fp16 needs a CUDA device"),
        (
            ["--do_train", "--train_dataset", "road_anomaly", "--train_split", "validation", "--train_root", "."],
            ValueError,
            "training needs trainId",
        ),
        (
            ["--do_train", "--train_dataset", "cityscapes", "--train_split", "val", "--train_root", "."],
            ValueError,
            "no split 'val'",
        ),
        (["--do_train", "--synthetic_num_examples", "0"], ValueError, "num_examples=0"),
        (["--do_train", "--train_dataset", "cityscapes", "--train_root", "."], FileNotFoundError, "No Cityscapes images"),
        (["--do_train", "--ood_objects_folder", "/no/objects"], FileNotFoundError, "/no/objects"),
        (["--do_eval"], ValueError, "--do_eval needs --eval_benchmarks"),
        ([], ValueError, "nothing to do"),
        (["--do_train", "--config_overrides", "hidden_dim"], ValueError, "KEY=VALUE"),
    ],
)
def test_bad_arguments_fail_before_training(tmp_path, extra, error, message):
    with pytest.raises(error, match=message):
        run_ood_segmentation.main([*TINY, "--output_dir", str(tmp_path), "--max_steps", "1", *extra])
    assert not list(tmp_path.glob("checkpoint-*"))


def test_missing_model_folder_is_named(tmp_path):
    (tmp_path / "outputs" / "demo").mkdir(parents=True)
    arguments = [argument for argument in TINY if argument != "--random_clip_init"]
    with pytest.raises(FileNotFoundError, match=r"--model_name_or_path '.*outputs/dmeo' does not exist.*demo"):
        run_ood_segmentation.main(
            [*arguments, "--output_dir", str(tmp_path / "run"), "--do_eval", "--eval_benchmarks", "synthetic",
             "--model_name_or_path", str(tmp_path / "outputs" / "dmeo")]
        )  # fmt: skip


def test_argument_problems_end_in_one_line_from_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--output_dir", str(tmp_path), "--do_eval",
         "--eval_benchmarks", "mars_rover"],
        env=script_env(), cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert lines == [
        "run_ood_segmentation.py: error: --eval_benchmarks: unknown benchmark 'mars_rover'; expected one of "
        + str(sorted(run_ood_segmentation.datasets_scripts.BENCHMARKS))
    ]
    assert "Traceback" not in result.stderr


def test_results_of_an_earlier_evaluation_are_not_replaced_silently(tmp_path):
    evaluation = [*TINY, "--output_dir", str(tmp_path), "--do_eval", "--eval_benchmarks", "synthetic"]
    evaluation += ["--num_overlays", "0"]
    run_ood_segmentation.main([*evaluation, "--max_eval_samples", "2"])
    results = tmp_path / "eval_results.json"
    stored = json.loads(results.read_text())
    stored["fishyscapes_lf"] = {"frames": 100}  # another benchmark's results are kept
    results.write_text(json.dumps(stored))
    with pytest.raises(FileExistsError, match=r"eval_results.json already holds results for synthetic:anomaly \(2 fr"):
        run_ood_segmentation.main([*evaluation, "--max_eval_samples", "1"])
    assert json.loads(results.read_text())["synthetic:anomaly"]["frames"] == 2
    run_ood_segmentation.main([*evaluation, "--max_eval_samples", "1", "--overwrite_eval_results"])
    stored = json.loads(results.read_text())
    assert stored["synthetic:anomaly"]["frames"] == 1 and stored["fishyscapes_lf"] == {"frames": 100}
