"""The code may be reused: a BSD 3-Clause LICENSE, and a CITATION.cff that cites the project
(its version and licence as the package states them) and the two studies it reproduces."""

import tomllib

import yaml

from conftest import REPO

CLAUSES = (
    "Redistributions of source code must retain the above copyright notice",
    "Redistributions in binary form must reproduce the above copyright notice",
    "Neither the name of the copyright holder nor the names of its",
)


def test_licence_is_bsd_3_clause():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    for clause in CLAUSES:
        assert clause in text
    assert 'THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"' in text


def test_citation_cites_the_project_and_both_studies():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == project["version"] and cff["license"] == "BSD-3-Clause"
    assert cff["title"].startswith("encscale") and cff["authors"] and cff["message"]
    titles = {ref["title"]: ref for ref in cff["references"]}
    first = titles["Applicability of scaling laws to vision encoding models"]
    second = titles["Training Compute-Optimal Vision Transformers for Brain Encoding"]
    assert [a["family-names"] for a in first["authors"]] == ["Matsuyama", "Sasaki", "Nishimoto"]
    assert second["authors"][0]["family-names"] == "Ahmadi" and second["year"] == 2024
    for ref in cff["references"]:  # CFF 1.2.0: each reference has a type, title and authors
        assert {"type", "title", "authors"} <= ref.keys()
