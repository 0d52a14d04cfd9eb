# The streaming upload relay (`python -m chalicelib.relay`), the opt-in container of the AWS stack
# (infra/resources.json, parameter UploadRelay). Build for Fargate ARM64:
#   docker buildx build --platform linux/arm64 -t <account>.dkr.ecr.<region>.amazonaws.com/registry-relay:<tag> --push .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt requirements-relay.txt ./
RUN pip install -r requirements-relay.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin relay

COPY app.py ./
COPY chalicelib ./chalicelib

USER 10001
EXPOSE 8080
CMD ["python", "-m", "chalicelib.relay"]
