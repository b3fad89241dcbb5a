"""No secret in the repository: every file git tracks or would add (`git ls-files`, untracked
but not ignored included) is scanned for private keys, cloud and service tokens, credentials in
URLs, literal secret keys and passwords, and for files that hold secrets by their nature.

Tests may hold throwaway passwords ("pw"): for them only the unmistakable token formats count.
"""

import math
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 5_000_000

# Formats that are a secret wherever they appear (tests included).
TOKENS = {
    "private key": re.compile(r"-{5}BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-{5}"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_?secret_?access_?key\W{1,4}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
    "GitHub token": re.compile(r"\bgh[opusr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{50,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-|svcacct-|ant-)?[A-Za-z0-9_-]{32,}"),
    "Stripe live key": re.compile(r"\b[rs]k_live_[0-9A-Za-z]{20,}"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}

# Assignments of literal secrets, checked outside the tests (and in every settings module).
SECRET_NAME = r"[A-Za-z0-9_]*(?:SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)[A-Za-z0-9_]*"
ASSIGNMENTS = {
    # SECRET_KEY = "..." (Django's): only a key that says it is insecure may be written down
    "literal SECRET_KEY": re.compile(r"""\bSECRET_KEY\s*[:=]\s*(?P<q>['"])(?P<value>[^'"]+)(?P=q)"""),
    "literal secret": re.compile(rf"""(?i)["']?\b{SECRET_NAME}["']?\s*[:=]\s*(?P<q>['"])(?P<value>[^'"\s]{{8,}})(?P=q)"""),
    # NAME=value in shell scripts, Makefiles, YAML, .env and documentation (not Python)
    "secret in an environment file": re.compile(
        rf"""(?m)^\s*(?:export\s+)?{SECRET_NAME.replace("A-Za-z", "A-Z")}\s*[:?]?=\s*"""
        rf"""(?P<value>[^\s'"$#{{<][^\s#]{{7,}})\s*$"""),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"<>]+:(?P<value>[^\s/@'\"<>]{3,})@"),
    "DRF token": re.compile(r"\bToken (?P<value>[0-9a-f]{40})\b"),
}
PLACEHOLDER = re.compile(r"(?i:insecure|example|placeholder|changeme|change-me|dummy|not-a-real|your[-_]|xxxx)|"
                         r"\*{4}|^[A-Z][A-Z0-9_]*$|^[<{$%]|\$\{|\{\{|[<>]|\.\.\.")

SECRET_FILES = re.compile(r"(?i)(^|/)(\.env(\..+)?|.+\.(pem|key|p12|pfx|jks|keystore)|id_(rsa|dsa|ecdsa|ed25519)"
                          r"(\.pub)?|\.netrc|\.pypirc|credentials(\.json)?|demo-accounts\.txt|.+\.sqlite3)$")
ALLOWED_FILES = {".env.example"}


def is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.startswith("tests/") or name.startswith("test_") or name == "conftest.py"


def is_settings(path: str) -> bool:
    return path.startswith("config/settings")


def entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def findings(path: str, text: str) -> list[str]:
    found = [f"{path}:{text.count(chr(10), 0, m.start()) + 1}: {kind}"
             for kind, pattern in TOKENS.items() for m in pattern.finditer(text)]
    if is_test(path) and not is_settings(path):
        return found
    for kind, pattern in ASSIGNMENTS.items():
        if kind == "secret in an environment file" and path.endswith(".py"):
            continue  # Python's assignments are the literal rules' (a NAME=value line is a keyword argument)
        for match in pattern.finditer(text):
            value = match.group("value")
            if PLACEHOLDER.search(value):
                continue
            if kind == "literal secret" and (len(value) < 12 or entropy(value) < 3.0):
                continue  # a word, a field name or a format, not a secret
            found.append(f"{path}:{text.count(chr(10), 0, match.start()) + 1}: {kind}")
    return found


def repository_files() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return sorted({name for name in listed.decode().split("\0") if name})


def read_text(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def test_no_file_in_the_repository_holds_a_secret():
    files = repository_files()
    assert any(name == "config/settings.py" for name in files)
    problems = []
    for name in files:
        if SECRET_FILES.search(name) and name.rsplit("/", 1)[-1] not in ALLOWED_FILES:
            problems.append(f"{name}: a file that holds secrets by its nature")
            continue
        text = read_text(ROOT / name)
        if text is not None:
            problems += findings(name, text)
    assert not problems, "looks like secrets (move them to the environment):\n" + "\n".join(problems)


# The scanner itself: secrets built at run time, so that none is written in this file.
def fake(*parts: str) -> str:
    return "".join(parts)


@pytest.mark.parametrize("path,text", [
    ("deploy/key.txt", fake("-----BEGIN ", "RSA PRIVATE KEY-----\nMIIEow...\n")),
    ("app/aws.py", fake("KEY_ID = '", "AKIA", "Q3EGWQ7XZ4P2VHJD", "'")),
    ("tests/test_x.py", fake("token = 'gh", "p_", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "'")),
    ("app/llm.py", fake("client = Client(api_key='s", "k-", "proj-Zr4Qv8Xy2Lm6Np0Tb3Wc7Hd1Kf5Js9Ga'", ")")),
    ("config/settings.py", fake('SECRET_KEY = "', "h7$k2!x9q@m4", 'w8z1r5t3y6u0"')),
    ("config/settings_test.py", fake('SECRET_KEY = "', "s0m3-r34l-l00k1ng-k3y", '"')),
    ("annotation/client.py", fake('PASSWORD = "', "Tr0ub4dor&3xQ9!", '"')),
    ("modelserve/remote.py", fake('headers = {"Authorization": "Token ', "3f" * 20, '"}')),
    ("deploy/.ci/run", fake("export MODELSERVE_", "TOKEN=", "9c1d7e5a2b8f4c6d0e3a")),
    ("README.md", fake("DATABASE_URL=postgres://app:", "S3cr3tPa55", "@db:5432/advtrain")),
])
def test_the_scanner_finds_planted_secrets(path, text):
    assert findings(path, text), (path, text)


@pytest.mark.parametrize("path,text", [
    ("tests/annotation/conftest.py", 'User.objects.create_user(username, password="pw")'),
    ("tests/security/test_login.py", 'PASSWORD = "correct horse battery staple"'),
    ("config/settings.py", 'SECRET_KEY = "development-only-insecure-key"'),
    ("config/settings.py", 'MODELSERVE_TOKEN = os.environ.get("MODELSERVE_TOKEN", "")'),
    ("modelserve/api.py", 'headers = {"Authorization": f"Token {settings.MODELSERVE_TOKEN}"}'),
    ("README.md", "`DATABASE_URL` | e.g. `postgres://app@db:5432/advtrain`"),
    ("README.md", "Authenticate with `Authorization: Token <key>`"),
    ("annotation/forms.py", 'password = forms.CharField(widget=forms.PasswordInput, label="password")'),
    ("Makefile", "TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres"),
])
def test_the_scanner_leaves_ordinary_text_alone(path, text):
    assert not findings(path, text), (path, text)
