# tierbroker in a container: `docker compose up` (compose.yaml) runs it against MinIO.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY tiering ./tiering
COPY remote_index ./remote_index
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /data tierbroker \
    && mkdir -p /data && chown tierbroker /data
USER tierbroker
WORKDIR /data
VOLUME ["/data"]

# Kafka, Prometheus metrics, HTTP admin endpoint.
EXPOSE 9092 9464 9465

# Every setting can come from TIERBROKER_* environment variables (compose.yaml
# sets them) or from --override flags appended to this command.
CMD ["tierbroker", "serve"]
