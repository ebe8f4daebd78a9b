"""Sphinx configuration for the gearman manual."""
import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))

with open(os.path.join("..", "gearman", "version.py"), encoding="utf-8") as handle:
    release = re.search(r'"([^"]+)"', handle.read()).group(1)

project = "gearman"
author = "The gearman developers"
copyright = "2026, The gearman developers"
version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.graphviz"]
graphviz_output_format = "svg"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
