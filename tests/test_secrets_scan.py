"""The secret-scanning rules (.gitleaks.toml) catch planted keys and pass the examples.

No gitleaks binary can be installed here (not in Debian 12, not on PyPI or npm from its authors),
so the rules are evaluated the way gitleaks applies them, in Python: a rule runs on a file when one
of its keywords is in it (case-insensitive), every regex match is a finding, the secret is the
`secretGroup`, a secret whose Shannon entropy is not above the rule's `entropy` is dropped, and a
finding is allowed when an `[[allowlists]]` entry's path regex matches the file, one of its regexes
matches the secret, or one of its stopwords is in it. The regexes are kept in the subset that Go's
RE2 and Python's `re` (ASCII mode) read alike, which the first test checks.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
import subprocess
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.config import ConfigStore

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".gitleaks.toml"
# RE2 has no look-around, backreferences, atomic groups or possessive quantifiers; Python (3.11)
# wants inline flags at the start. Anything in this list would make the two engines disagree.
NOT_RE2 = [r"\(\?[=!]", r"\(\?<[=!]", r"\(\?P=", r"\\[1-9]", r"\(\?>", r"[*+?}]\+", r"\\[AZz]"]


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str
    secret: str


def shannon(text: str) -> float:
    """Return the Shannon entropy of `text` in bits per character, as gitleaks computes it."""
    counts, size = Counter(text), len(text)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


class Rules:
    """The rules and allowlists of .gitleaks.toml, applied as gitleaks applies them."""

    def __init__(self, path: Path = CONFIG) -> None:
        self.config = tomllib.loads(path.read_text(encoding="utf-8"))
        self.rules = self.config["rules"]
        self.allowlists = self.config.get("allowlists", [])

    def scan(self, path: str, text: str) -> list[Finding]:
        """Return the findings in one file's text; `path` is its repository-relative path."""
        lowered = text.lower()
        found = []
        for rule in self.rules:
            if rule.get("keywords") and not any(word.lower() in lowered for word in rule["keywords"]):
                continue
            for match in re.finditer(rule["regex"], text, re.ASCII):
                secret = match.group(rule.get("secretGroup", 0))
                if rule.get("entropy") and shannon(secret) <= rule["entropy"]:
                    continue
                if not self.allowed(path, secret):
                    found.append(Finding(rule["id"], path, secret))
        return found

    def allowed(self, path: str, secret: str) -> bool:
        for allow in self.allowlists:
            assert allow.get("condition", "OR").upper() in ("OR", "||"), "only OR allowlists are evaluated here"
            if any(re.search(pattern, path, re.ASCII) for pattern in allow.get("paths", [])):
                return True
            if any(re.search(pattern, secret, re.ASCII) for pattern in allow.get("regexes", [])):
                return True
            if any(word.lower() in secret.lower() for word in allow.get("stopwords", [])):
                return True
        return False


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules()


# --------------------------------------------------------------------------- the rules themselves


def test_the_rules_are_in_the_re2_and_python_common_subset(rules: Rules):
    patterns = [rule["regex"] for rule in rules.rules]
    for allow in rules.allowlists:
        patterns += allow.get("paths", []) + allow.get("regexes", [])
    for pattern in patterns:
        re.compile(pattern, re.ASCII)
        assert not any(re.search(bad, pattern) for bad in NOT_RE2), pattern
        assert "(?" not in pattern.replace("(?:", "").replace("(?i)", ""), pattern
        assert "(?i)" not in pattern[4:], f"flags only at the start: {pattern}"
    ids = [rule["id"] for rule in rules.rules]
    assert len(set(ids)) == len(ids) and all(rule.get("keywords") for rule in rules.rules)
    assert rules.config["extend"]["useDefault"] is True  # gitleaks' own rules run too


def test_pre_commit_runs_gitleaks():
    text = (ROOT / ".pre-commit-config.yaml").read_text()
    assert re.search(r"repo: https://github\.com/gitleaks/gitleaks\s+rev: v8\.(2[5-9]|[3-9]\d)\.\d+", text), text
    assert re.search(r"- id: gitleaks\b", text)


# --------------------------------------------------------------------------- planted keys


def token(rng: random.Random, size: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


def planted_keys() -> dict[str, tuple[str, str]]:
    """Made-up keys in each shape the console handles (generated, so none sits in this file): name -> (key, rule)."""
    rng = random.Random(14)
    return {
        "openai": ("sk-" + token(rng, 48), "ibc-openai-key"),
        "openai project": ("sk-proj-" + token(rng, 74, string.ascii_letters + string.digits + "_-") + "T3BlbkFJ"
                           + token(rng, 74, string.ascii_letters + string.digits + "_-"), "ibc-openai-key"),
        "openrouter": ("sk-or-v1-" + token(rng, 64, "0123456789abcdef"), "ibc-openai-key"),
        "litellm virtual key": ("sk-" + token(rng, 22), "ibc-openai-key"),
        "xai": ("xai-" + token(rng, 80), "ibc-xai-key"),
        "gemini": ("AIza" + token(rng, 35, string.ascii_letters + string.digits + "_-"), "ibc-gemini-key"),
        "seedream ark": (str(uuid.UUID(int=rng.getrandbits(128))), "ibc-settings-api-key"),
    }


PLANTED = planted_keys()


@pytest.mark.parametrize("shape", list(PLANTED))
def test_a_key_planted_in_a_settings_file_is_caught(rules: Rules, tmp_path: Path, shape: str):
    key, rule = PLANTED[shape]
    store = ConfigStore(tmp_path)  # the console writes the file, exactly as a user's data dir holds it
    store.update_settings({"api": {"api_url": "https://api.example.com/v1", "api_key": key, "model": "m"}})
    settings = tmp_path / "settings.json"
    assert key in settings.read_text()
    findings = rules.scan("web_data/settings.json", settings.read_text())
    assert Finding(rule, "web_data/settings.json", key) in findings, findings
    # Also found in a config export made with EXPORT_INCLUDE_SECRETS=1 and saved into the repository.
    export = json.dumps(store.export(include_secrets=True), indent=2)
    assert key in {finding.secret for finding in rules.scan("exports/config.json", export)}


def test_a_bearer_token_in_extra_headers_is_caught(rules: Rules, tmp_path: Path):
    secret = token(random.Random(7), 40)
    store = ConfigStore(tmp_path)
    store.put_preset("api", "proxy", {"api_url": "https://gw.example.com/v1",
                                      "extra_headers": {"Authorization": f"Bearer {secret}"}})
    findings = rules.scan("presets.json", (tmp_path / "presets.json").read_text())
    assert Finding("ibc-bearer-token", "presets.json", secret) in findings, findings


@pytest.mark.parametrize("header, value, rule", [
    ("api-key", token(random.Random(8), 32, "0123456789abcdef"), "ibc-settings-api-key"),  # Azure OpenAI
    ("X-Auth-Token", token(random.Random(9), 40), "ibc-credential-header"),
    ("Cookie", "session=" + token(random.Random(10), 40), "ibc-credential-header"),
], ids=["azure api-key", "X-Auth-Token", "Cookie"])  # never the made-up secret in a test's name
def test_a_credential_header_in_extra_headers_is_caught(rules: Rules, tmp_path: Path, header: str, value: str, rule: str):
    store = ConfigStore(tmp_path)
    store.update_settings({"api": {"api_url": "https://gw.example.com/v1", "extra_headers": {header: value}}})
    findings = rules.scan("web_data/settings.json", (tmp_path / "settings.json").read_text())
    assert Finding(rule, "web_data/settings.json", value) in findings, findings


@pytest.mark.parametrize("param", ["key", "api_key", "api-key", "access_token", "token"])
def test_a_credential_in_an_api_url_query_is_caught(rules: Rules, tmp_path: Path, param: str):
    secret = token(random.Random(param), 39, string.ascii_letters + string.digits + "_-")
    store = ConfigStore(tmp_path)
    store.put_preset("api", "gw", {"api_url": f"https://gw.example.com/v1beta?alt=sse&{param}={secret}",
                                   "key_pool": [{"api_key": "k" * 20, "api_url": f"https://gw2.example.com/v1?{param}={secret}2"}]})
    findings = {(f.rule, f.secret) for f in rules.scan("presets.json", (tmp_path / "presets.json").read_text())}
    assert {("ibc-url-query-key", secret), ("ibc-url-query-key", secret + "2")} <= findings, findings


def test_a_key_pasted_into_a_script_is_caught(rules: Rules):
    key = PLANTED["openai"][0]
    script = f'#!/bin/sh\nexport OPENAI_API_KEY={key}\ncurl -H "Authorization: Bearer {key}" https://api.openai.com/v1/models\n'
    assert {f.rule for f in rules.scan("scripts/run.sh", script)} == {"ibc-openai-key", "ibc-bearer-token"}


@pytest.mark.parametrize("value", [
    "", "••••••••", "sk-...", "sk-…", "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "YOUR_API_KEY", "your-key-here",
    "sk-your-key", "$OPENAI_API_KEY", "${XAI_API_KEY}", "xai-xxxxxxxxxxxxxxxxxxxxxxxx", "placeholder-key",
    "t0ken-for-tests-only-0123456789abcde",  # as tests name them in reports (RELIABILITY.md)
    "••••••••Q7xZ",  # the console's mask of a long secret, its last four characters shown
])
def test_placeholders_and_the_mask_pass(rules: Rules, value: str):
    text = json.dumps({"api": {"api_key": value, "api_url": f"https://gw.example.com/v1?key={value}",
                               "extra_headers": {"Authorization": f"Bearer {value}", "X-Auth-Token": value}}},
                      ensure_ascii=False)  # as the console writes its files
    assert rules.scan("web_data/settings.example.json", text) == []


# --------------------------------------------------------------------------- the examples and the repository


def test_the_examples_and_the_readmes_pass(rules: Rules):
    files = [*sorted((ROOT / "web_data").glob("*.json")), *sorted(ROOT.glob("README*.md")), CONFIG,
             ROOT / ".pre-commit-config.yaml"]
    assert len([f for f in files if f.parent.name == "web_data"]) >= 2
    for path in files:
        assert rules.scan(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")) == [], path


def test_the_repository_passes(rules: Rules):
    """What `pre-commit run --all-files` scans: every tracked file and every new one not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    findings = []
    for name in filter(None, listed):
        path = ROOT / name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary files (images) and files deleted in the work tree
        findings += rules.scan(name, text)
    assert findings == [], "\n".join(f"{f.path}: {f.rule}" for f in findings)  # never print the secret itself


def test_runtime_data_and_build_output_are_ignored(tmp_path: Path):
    names = ["web_data/settings.json", "web_data/presets.json", "web_data/cache/ab/x.png", "console.db",
             "settings.json", "dist/image-batch-console", "build/x/y.toc", "app.spec", ".venv-build/bin/python",
             "tests/artifacts/journey_a.png", "logs/console.log", "data/console.db-wal", "config-export.json"]
    checked = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(names),
                             capture_output=True, text=True)
    assert sorted(checked.stdout.split()) == sorted(names)
    kept = ["web_data/settings.example.json", "web_data/presets.example.json", "docs/screenshot.png"]
    checked = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(kept),
                             capture_output=True, text=True)
    assert checked.stdout.split() == []
