# One image for every process of the service; the command chooses which (see docker-compose.yml
# and deploy/kubernetes/). Build: docker build -t taskscheduler:0.1.0 .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY distributions ./distributions
COPY taskscheduler ./taskscheduler
COPY services ./services
COPY gateway ./gateway
# The client distribution first: the server's depends on it, built from this tree.
RUN pip install ./distributions/client && pip install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin taskscheduler
COPY --from=build /opt/venv /opt/venv
# services/ and gateway/ are in no wheel (no generic top-level names in site-packages): they run
# from this copy of the tree, on PYTHONPATH whatever the working directory.
COPY --from=build /src/services /opt/taskscheduler/services
COPY --from=build /src/gateway /opt/taskscheduler/gateway
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/taskscheduler \
    PYTHONUNBUFFERED=1 \
    TASKSCHED_GRPC_HOST=0.0.0.0 \
    TASKSCHED_GATEWAY_HOST=0.0.0.0 \
    TASKSCHED_METRICS_HOST=0.0.0.0
USER 10001
WORKDIR /tmp
EXPOSE 50051 8000 9101 9102 9103
# The api's gRPC health check; the other processes set their own (docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-m", "taskscheduler.probe", "grpc", "127.0.0.1:50051"]
CMD ["python", "-m", "services.api"]
