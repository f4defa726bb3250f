"""The Triton deformable-attention kernels against transformers' grid_sample implementation on the CPU, under
Triton's interpreter (`TRITON_INTERPRET=1`, which must be set before triton is first imported: the checks in
`triton_interpreter_checks.py` run in a fresh process): outputs, and gradients of value, locations and weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


pytest.importorskip("triton")

CHECKS = Path(__file__).with_name("triton_interpreter_checks.py")
NAMES = [
    "check_forward_and_gradients_match_grid_sample",
    "check_points_far_outside_the_maps_give_zero_output_and_gradient",
    "check_bfloat16_values_are_accumulated_in_float32",
    "check_bad_shapes_are_refused_with_the_expected_layout",
]


@pytest.fixture(scope="module")
def results():
    repo = str(CHECKS.parents[1])
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(CHECKS)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_check_is_run(results):
    assert sorted(results) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_triton_kernel_under_the_interpreter(results, name):
    assert results[name] == "ok", results[name]
