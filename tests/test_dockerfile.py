"""Dockerfile.cuda cannot be built here (no Docker engine, no GPU): check what it names exists in the repo."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_copies_what_exists_and_installs_known_extras():
    text = (ROOT / "Dockerfile.cuda").read_text()
    copies = re.findall(r"^COPY (.+) \S+$", text, re.M)
    sources = [s for line in copies for s in line.split()]
    assert {"pyproject.toml", "gpubt", "kernels", "configs", "bench"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = re.search(r"pip install --no-cache-dir -e '\.\[([a-z,]+)\]'", text).group(1).split(",")
    assert "cuda" in installed and set(installed) <= extras
    assert re.search(r'^ENTRYPOINT \["gpubt"\]$', text, re.M) and 'CMD ["run", "backend=cuda"]' in text
