"""The seed document's snippets, read from ../shared/seed/STORAGE_WORKFLOW.md, and what runs them as written.

Tests change only a snippet's host, example ids and drive paths, and add the Authorization header.
"""

import builtins
import json
import re
import subprocess

from tests.conftest import REPO

SEED = REPO.parent / "shared" / "seed" / "STORAGE_WORKFLOW.md"


def seed_block(workflow: str, step: str, language: str) -> str:
    """The first ```language block under '#### **<step>...' of '### **<workflow>...' in the seed."""
    section = SEED.read_text().split(f"### **{workflow}")[1].split("\n### ")[0]
    step_text = section.split(f"#### **{step}")[1].split("\n#### ")[0]
    return re.search(rf"```{language}\n(.*?)```", step_text, re.S).group(1)


def seed_python_block(workflow: str, step: str) -> str:
    return seed_block(workflow, step, "python")


def seed_bash_block(workflow: str, step: str) -> str:
    return seed_block(workflow, step, "bash")


def run_seed_block(block: str, *, url: str, token: str, substitutions: dict[str, str]) -> list[dict]:
    """Run a seed curl block with bash; return each response body as parsed JSON."""
    script = block.replace("http://localhost:8000", url)
    for old, new in substitutions.items():
        script = script.replace(old, new)
    script = script.replace("curl ", f'curl -sS -w "\\n" -H "Authorization: Bearer {token}" ')
    result = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


class SeedRequests:
    """`requests` for the seed's scripts: the Django test client with the bearer token, answers with .ok and .json()."""

    def __init__(self, api):
        self.api = api

    def get(self, path, **kwargs):
        return self._answer(self.api.get(path))

    def post(self, path, json=None, **kwargs):
        return self._answer(self.api.post(path, json))

    @staticmethod
    def _answer(response):
        response.ok = response.status_code < 400
        return response


class LiveServerRequests:
    """`requests`, with the live server's address and the Authorization header added to every call."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def __getattr__(self, method):
        import requests

        def call(path, **kwargs):
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token}"}
            return getattr(requests, method)(self.url + path, headers=headers, timeout=120, **kwargs)

        return call


def seed_namespace(name: str, requests_adapter) -> dict:
    """Globals for exec'ing a seed script as written: its `import requests` gets the adapter."""

    def seed_import(module, *args, **kwargs):
        return requests_adapter if module == "requests" else builtins.__import__(module, *args, **kwargs)

    return {"__name__": name, "__builtins__": {**vars(builtins), "__import__": seed_import}}
