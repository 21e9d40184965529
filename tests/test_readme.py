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


def test_command_sections_list_every_command_dataset_and_prepare_option():
    from keras_dgl import cli, registry

    text = README.read_text()
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for command in commands:
        assert f"### `keras-dgl {command}`" in text or (
            f"## The main job: `keras-dgl {command}`" in text), command
    row = re.search(r"^\| `--dataset` \|.*$", text, re.M).group(0)
    assert [n for n in registry.DATASETS if f"`{n}`" not in row] == []
    section = text[text.index("### `keras-dgl prepare`"):text.index("## Install")]
    missing = [
        action.option_strings for action in commands["prepare"]._actions
        if action.dest != "help"
        and not any(f"`{o}" in section for o in action.option_strings)
    ]
    assert missing == []
    for name in registry.DATASETS:
        if not registry.DATASETS[name].builtin:
            assert f"`{name}`" in section, name
