"""`edgepack init` of a .keras file: the serving signature, and the manifest builds (packager/init/infer_tf.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from packager.config.manifest import load_manifest

from .conftest import cli, fill_calibration, run, signature


@pytest.mark.slow
def test_keras_file_signature_and_build(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = ("import keras\n"
            "inp = keras.Input(shape=(4,), name='features')\n"
            "h = keras.layers.Dense(3, name='logits')(inp)\n"
            "keras.Model(inp, [h, keras.layers.Softmax(name='probs')(h)]).save('clf.keras')\n")
    subprocess.run([sys.executable, "-c", code], cwd=project, check=True, capture_output=True, timeout=300)
    assert run(capsys, "clf.keras", "--json")[0] == 0  # keeps the JSON in capsys' buffer: read the file
    ins, outs = signature(project / "clf.yaml")
    assert ins == [{"name": "features", "dtype": "float32", "shape": ["batch", 4]}]
    assert outs == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]},
                    {"name": "probs", "dtype": "float32", "shape": ["batch", 3]}]
    assert load_manifest(project / "clf.yaml").source.framework == "tensorflow"
    fill_calibration(project / "clf.yaml",
                     {"features": np.random.default_rng(0).random((32, 4)).astype(np.float32)})
    out = cli("build", "clf.yaml", "--out", str(project / "dist"), "--json", cwd=project)
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["targets"][0]["status"] == "ok"
