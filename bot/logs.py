"""Log output: readable lines (the default) or one JSON object per line (`log.format = "json"`).

A JSON line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, and where they apply
`job_id`, `platform`, `workspace`, `model`, `state` and `cost` (from a call's `extra=`, see
`job_fields`; a message about "job <id>" names its job), plus `error` with a traceback.

Records are formatted and written on a thread of their own (`QueueHandler` in front of a
`QueueListener`): a log call on the event loop only queues the record, so a slow disk or pipe
never holds the loop, and a line costs the loop only the building of its record.
The thread writes lines in batches, whenever its queue runs dry, so a line reaches the file or
pipe within about `GATHER_S`. `logging.shutdown()` (run at exit) writes out what is still queued.

Two promises hold in both formats. Secrets (the Runpod key, the Discord and Slack tokens) are
replaced by `**********` wherever they would appear. Prompt text is logged only through
`extra={"prompt": ...}`, and only written when `log.include_prompts` is true.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import time
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr

from bot.config import Settings

if TYPE_CHECKING:
    from bot.jobs.store import JobRecord

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOB_FIELDS = ("job_id", "platform", "workspace", "model", "state", "cost")
MASK = "**********"
GATHER_S = 0.02
BATCH_LINES = 256


def job_fields(job: JobRecord, **more: Any) -> dict[str, Any]:
    """`extra=` for a log call about a job: who, where, which model, what state (and cost)."""
    platform, workspace, _ = job.identity
    fields = {
        "job_id": job.id,
        "platform": platform,
        "workspace": workspace,
        "model": job.model,
        "state": job.state,
    }
    return {**fields, **{k: str(v) for k, v in more.items()}}


class BotFormatter(logging.Formatter):
    """One line per record, human or JSON, with `**********` in place of any secret value."""

    def __init__(self, *, as_json: bool, secrets: Iterable[str], include_prompts: bool) -> None:
        super().__init__(HUMAN_FORMAT)
        self.as_json = as_json
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._include_prompts = include_prompts

    def format(self, record: logging.LogRecord) -> str:
        prompt = getattr(record, "prompt", None) if self._include_prompts else None
        if self.as_json:
            text = self._json(record, prompt)
        else:
            text = super().format(record) + ("" if prompt is None else f" prompt={prompt!r}")
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _json(self, record: logging.LogRecord, prompt: object) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in JOB_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if "job_id" not in line and (job_id := _job_named(record)) is not None:
            line["job_id"] = job_id
        if prompt is not None:
            line["prompt"] = str(prompt)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class DeferredHandler(QueueHandler):
    """Queues records as they are for `target`, which a listener thread formats and writes.

    The record is queued untouched (QueueHandler would format it here, on the caller's thread,
    to make it picklable for other processes; ours stays in this one). Arguments are therefore
    rendered a moment later: log values, not objects that change afterwards, as everywhere.
    `flush` waits until what was queued so far is written; `close` also stops the thread.
    """

    def __init__(self, target: logging.Handler) -> None:
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue()
        super().__init__(self._queue)
        self.target = target
        self._listener: QueueListener | None = _GatheringListener(
            self._queue, target, respect_handler_level=True
        )
        self._listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def flush(self) -> None:
        if self._listener is not None:
            self._queue.join()
        self.target.flush()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()  # writes out what is queued, then ends the thread
            self._listener = None
        self.target.flush()
        self.target.close()
        super().close()


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines in batches, on `flush`, which the listener calls when its queue runs dry:
    one write to the file or pipe per batch instead of one per line (stderr is line-buffered)."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        if len(self._lines) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            text, self._lines = "".join(self._lines), []
            try:
                if text:
                    self.stream.write(text)
                super().flush()
            except Exception:  # as logging does for a line it cannot write: say so, carry on
                if logging.raiseExceptions:
                    traceback.print_exc(file=sys.stderr)


class _GatheringListener(QueueListener):
    """Lets lines gather for a moment when the queue runs dry: one wake-up of the thread per
    `GATHER_S` instead of one per line, each of which cost the busy event loop a thread switch."""

    def dequeue(self, block: bool) -> logging.LogRecord:
        records = cast("queue.Queue[logging.LogRecord]", self.queue)
        if block and records.empty():
            for handler in self.handlers:
                handler.flush()
            time.sleep(GATHER_S)
        return records.get(block)


def configure(settings: Settings, *, stream: Any = None) -> DeferredHandler:
    """Replace the root logger's handlers with one writing in the configured format."""
    target = BatchingStreamHandler(stream)
    target.setFormatter(
        BotFormatter(
            as_json=settings.log.format == "json",
            secrets=secrets_of(settings),
            include_prompts=settings.log.include_prompts,
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, DeferredHandler):
            old.close()
    handler = DeferredHandler(target)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # httpx logs every request at INFO: noise next to our own job lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def secrets_of(settings: Settings) -> list[str]:
    values: list[SecretStr | None] = [
        settings.runpod.api_key,
        settings.discord.token,
        settings.slack.bot_token,
        settings.slack.signing_secret,
        settings.slack.app_token,
    ]
    return [value.get_secret_value() for value in values if value is not None]


def _job_named(record: logging.LogRecord) -> str | None:
    """The id in messages written as `log.x("job %s ...", job_id, ...)`."""
    if isinstance(record.msg, str) and record.msg.startswith("job %s") and record.args:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        return str(args[0])
    return None
