"""Packaging for gearman: pure Python, standard library only at run time."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read(*parts):
    with open(os.path.join(HERE, *parts), encoding="utf-8") as handle:
        return handle.read()


VERSION = re.search(r'__version__ = "([^"]+)"', read("gearman", "version.py")).group(1)

setup(
    name="gearman",
    version=VERSION,
    description="Python 3 client, worker and admin client for Gearman job servers "
                "(the python-gearman 2.x API)",
    long_description=read("README.rst"),
    long_description_content_type="text/x-rst",
    license="MIT",
    packages=find_packages(include=["gearman", "gearman.*"]),
    package_data={"gearman": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=[],
    extras_require={
        "test": ["pytest==9.0.3", "hypothesis==6.155.2"],
    },
    entry_points={
        "pytest11": ["gearman = gearman.testing"],
        "console_scripts": ["gearman-py = gearman.cli:main"],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: System :: Distributed Computing",
    ],
)
