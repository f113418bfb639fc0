# aiflowy: one image for the web processes (uvicorn) and the job workers (manage.py runjobs).
# docs/deploy.md explains the processes and every environment variable.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (a layer that changes only with requirements.txt). All pins have wheels
# for linux/amd64 and arm64, so no compiler is installed.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Static files collected into the image, served by WhiteNoise. SECRET_KEY is required to
# import the settings; this one exists only during the build.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --no-create-home aiflowy

USER aiflowy
EXPOSE 8000

# One process per container; scale with more containers (docker-compose.yml runs two).
# The graceful-shutdown timeout outlasts AIFLOWY_SHUTDOWN_GRACE_SECONDS (default 20).
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "*", \
     "--timeout-graceful-shutdown", "30"]
