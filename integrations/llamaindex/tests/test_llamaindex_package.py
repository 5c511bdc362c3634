"""The package says which version it is and ships its type information."""

from __future__ import annotations

from importlib import metadata, resources

import llama_index.postprocessor.crossrank as package


def test_version_is_the_installed_distributions():
    assert package.__version__ == metadata.version("llama-index-postprocessor-crossrank")
    assert package.__version__  # empty only when imported from an uninstalled source tree


def test_the_package_is_marked_typed():
    assert resources.files("llama_index.postprocessor.crossrank").joinpath("py.typed").is_file()
