"""A bad image that only fails when a DataLoader worker decodes it is still one line naming the file:
the loader raises ``UserInputError``, and the command line keeps the worker's own message, not its
traceback."""
from __future__ import annotations

import pytest
from torch._utils import ExceptionWrapper

from cars_deploy.cli._common import _one_line
from cars_deploy.data.datasets import _load_image
from cars_deploy.errors import UserInputError


def test_image_loader_names_the_file_it_cannot_decode(tmp_path):
    path = tmp_path / "cat.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UserInputError, match="cat.jpg cannot be decoded"):
        _load_image(str(path))


def test_error_reraised_from_a_worker_is_its_own_one_line_message(tmp_path):
    path = tmp_path / "cat.jpg"
    path.write_bytes(b"garbage")
    try:
        _load_image(str(path))
    except UserInputError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 0")  # what torch sends back from a worker
    with pytest.raises(UserInputError) as caught:
        wrapper.reraise()
    assert "Traceback" in str(caught.value)  # torch puts the worker's traceback into the message
    line = _one_line(caught.value)
    assert line.startswith("image ") and "cat.jpg cannot be decoded" in line and "Traceback" not in line
