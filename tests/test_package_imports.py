"""The lazy `tdos` package: torch-free parts import alone; a bare `import tdos` still registers with transformers."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import save_tiny_inference_folder

import tdos


REPO_ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> dict:
    """Runs `code` in a fresh interpreter from the repository root and returns the JSON it prints last."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_evaluation_imports_without_torch_or_transformers():
    loaded = run_python(
        """
        import json, sys
        import tdos.evaluation
        from tdos.evaluation import ComponentOODMetrics, PixelOODMetrics, SemanticIoUMetrics, plot_curves
        import tdos.ood_prompts
        print(json.dumps({name: name in sys.modules for name in ("torch", "transformers")}))
        """
    )
    assert loaded == {"torch": False, "transformers": False}


def test_public_names_are_all_reachable():
    assert set(tdos.__all__) <= set(dir(tdos))
    for name in tdos.__all__:
        assert getattr(tdos, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        tdos.NoSuchName  # noqa: B018


@pytest.fixture(scope="module")
def inference_dir(tmp_path_factory):
    return save_tiny_inference_folder(tmp_path_factory.mktemp("tiny_tdos_lazy"))


@pytest.mark.parametrize(
    "imports",
    [
        "import tdos\nfrom transformers import AutoImageProcessor, AutoModel, pipeline",
        "from transformers import AutoImageProcessor, AutoModel, pipeline\nimport tdos",
        "import tdos.configuration_tdos\nfrom transformers import AutoImageProcessor, AutoModel, pipeline",
    ],
    ids=["tdos-first", "transformers-first", "submodule-first"],
)
def test_bare_import_registers_the_auto_classes_and_the_task(inference_dir, imports):
    # Without trust_remote_code, transformers knows the "tdos" model type, its processor and the task only from the
    # package (a saved folder's own pipeline code needs trust_remote_code=True, with or without the package).
    found = run_python(
        imports
        + f"""
import json
model = AutoModel.from_pretrained({str(inference_dir)!r})
processor = AutoImageProcessor.from_pretrained({str(inference_dir)!r})
segmenter = pipeline("ood-segmentation", model=model, image_processor=processor)
print(json.dumps({{name: type(value).__module__ for name, value in
                  (("model", model), ("processor", processor), ("pipeline", segmenter))}}))
"""
    )
    assert found == {
        "model": "tdos.modeling_tdos",
        "processor": "tdos.image_processing_tdos",
        "pipeline": "tdos.pipeline_tdos",
    }
