import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer Llama with a character tokenizer and a chat template, built locally."""
    from tests.fixtures import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))
