"""The equivalent Runpod API call for a request, as the playground's code generation shows it.

The key is written as `$RUNPOD_API_KEY` (an environment variable), never the bot's own.
"""

from __future__ import annotations

import json
import pprint
import shlex
from collections.abc import Mapping, Sequence
from typing import Any


def curl(base_url: str, endpoint: str, input: Mapping[str, Any]) -> str:
    body = json.dumps({"input": dict(input)}, indent=2, ensure_ascii=False)
    url = f"{base_url.rstrip('/')}/{endpoint}/run"
    return (
        f"curl -X POST {shlex.quote(url)} \\\n"
        '  -H "Authorization: Bearer $RUNPOD_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )


def python(base_url: str, endpoint: str, input: Mapping[str, Any]) -> str:
    payload = pprint.pformat({"input": dict(input)}, indent=4, sort_dicts=False)
    url = f"{base_url.rstrip('/')}/{endpoint}"
    return (
        "import os, time, requests\n\n"
        f'url = "{url}"\n'
        'headers = {"Authorization": f"Bearer {os.environ[\'RUNPOD_API_KEY\']}"}\n'
        f'job = requests.post(url + "/run", headers=headers, json={payload}).json()\n'
        "while True:\n"
        "    status = requests.get(f\"{url}/status/{job['id']}\", headers=headers).json()\n"
        '    if status["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):\n'
        "        break\n"
        "    time.sleep(1)\n"
        'print(status.get("output") or status.get("error"))\n'
    )


def api_call(
    base_url: str, endpoint: str, input: Mapping[str, Any], other_seeds: Sequence[int] = ()
) -> str:
    """Both forms, ready to paste into a chat code block or a terminal.

    `input` is what the first copy of a job sent; `other_seeds` the seeds the other copies sent
    instead of its seed.
    """
    others = ""
    if other_seeds:
        copies = "copy 2" if len(other_seeds) == 1 else f"copies 2-{len(other_seeds) + 1}"
        seeds = ", ".join(map(str, other_seeds))
        others = f"# The first copy; {copies} sent the same with seed {seeds}.\n"
    return (
        f"{others}# curl\n{curl(base_url, endpoint, input)}\n\n"
        f"# Python\n{python(base_url, endpoint, input)}"
    )
