"""The README's quickstart runs as written on the active backend."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading):
    text = README.read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quickstart_runs_as_written(capsys):
    code = _python_block_after("## Quickstart")
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["logits"].shape == (16, 6)
    assert set(namespace["per_modality"]) == {"fused", "audio", "visual"}
    assert "audio_accuracy" in namespace["history"].history


def test_methods_table_is_the_registry():
    from keras_dgl import registry

    text = README.read_text()
    section = text[text.index("Methods (`--methods`"):]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| (.*?) \|$", section, re.M)
    table = {name: (summary, reference) for name, summary, reference in rows}
    assert table == {
        name: (method.summary, method.reference)
        for name, method in registry.METHODS.items()
    }
