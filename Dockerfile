# A small image that runs the bot; state (SQLite, media archive) lives in /data.
#   docker build -t runpod-bot .
#   docker run -v bot-data:/data -e RUNPOD_API_KEY=... -e DISCORD_TOKEN=... runpod-bot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BOT_STORAGE__DATABASE=/data/bot.db \
    BOT_HTTP__PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
RUN pip install . && useradd --create-home --uid 10001 bot && mkdir /data && chown bot /data

USER bot
VOLUME ["/data"]
EXPOSE 8080 3000
# Ready: database writable, adapters connected, Runpod answering (docs/operations.md). A 503
# makes urlopen raise, so the check fails; slim images have no curl.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=8)"
CMD ["python", "-m", "bot", "run"]
