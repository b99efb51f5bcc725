# One image for every bosun service: `docker run IMAGE run risk`, `... run ingest`, ...
# (infra/compose.yaml and infra/nomad/bosun.nomad.hcl start the six from it).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto proto
COPY bosun bosun
COPY services services
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    BOSUN_MIGRATIONS_DIR=/opt/bosun/postgres
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/bosun-*.whl)[live,otlp]" && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/bosun --create-home bosun
COPY infra/postgres /opt/bosun/postgres
COPY infra/bosun.toml /etc/bosun/bosun.toml
USER bosun
WORKDIR /var/lib/bosun
ENTRYPOINT ["bosun"]
CMD ["--help"]
