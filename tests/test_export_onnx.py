import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from tdos.export_onnx import CHECK_SIZES, export_onnx, main, max_difference  # noqa: E402


def check_graph(path, model):
    graph = onnx.load(str(path))
    assert max(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    assert not any("text_encoder" in init.name for init in graph.graph.initializer)  # the text tower is folded in
    (dims,) = [tuple(d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim) for i in graph.graph.input]
    assert dims[:2] == (1, 3) and all(isinstance(d, str) for d in dims[2:])  # dynamic height and width
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    stride = model.config.input_stride
    pixel_values = torch.randn(1, 3, 4 * stride, 6 * stride)
    semantic_map, score = session.run(None, {"pixel_values": pixel_values.numpy()})
    expected = model.predict(pixel_values, inference_mode="whole")
    np.testing.assert_allclose(score, expected.anomaly_score.numpy(), atol=1e-5)
    assert semantic_map.shape == (1, model.config.num_id_classes, 4 * stride, 6 * stride)


def test_cli_exports_the_vit_model_and_checks_it_at_512x512_and_512x1024(tiny_model_dir, tmp_path, caplog):
    from transformers import AutoModel

    caplog.set_level(logging.INFO, logger="tdos.export_onnx")
    out = tmp_path / "tiny.onnx"
    assert main([str(tiny_model_dir), str(out), "--check"]) == 0
    assert out.is_file() and not list(tmp_path.glob(".*tmp"))
    for height, width in CHECK_SIZES:
        assert f"{height}x{width}: max abs difference" in caplog.text
    check_graph(out, AutoModel.from_pretrained(tiny_model_dir).eval())
    with pytest.raises(SystemExit):
        main([str(tiny_model_dir), str(out), "--opset", "16"])
    # the README's pipeline-free example runs as written next to the file
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (example,) = re.findall(r"<!-- onnx-example -->\n```python\n(.*?)```", readme, re.S)
    out.rename(tmp_path / "tdos.onnx")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)).save(tmp_path / "road.png")
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "of the pixels score >= 0.5" in result.stdout


def test_rn50_model_matches_pytorch_at_512x512_and_512x1024(tmp_path):
    pytest.importorskip("timm")
    from test_modeling_rn50 import build_tiny_rn50_model

    model = build_tiny_rn50_model().eval()
    path = export_onnx(model, tmp_path / "rn50.onnx")
    for size in CHECK_SIZES:
        assert max_difference(model, path, size) <= 1e-4
    check_graph(path, model)
