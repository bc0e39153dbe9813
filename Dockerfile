# The journeys image for docker-compose.yml: worker, API and the setup job run the `journeys` command.
FROM python:3.11.10-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
# Every package pyproject.toml's [tool.setuptools.packages.find] includes, one line each, before the install
# (tests/test_compose.py builds a wheel from exactly these copies, so a package missing here fails there).
COPY contracts contracts
COPY journeymap journeymap
COPY workflows workflows
COPY activities activities
COPY workers workers
COPY starter starter
COPY storage storage
COPY runtime runtime
COPY audiences audiences
COPY analytics analytics
COPY testkit testkit
RUN pip install --no-cache-dir .
COPY journeys journeys
ENV JOURNEYS_JOURNEYS_DIR=/app/journeys JOURNEYS_DATA_DIR=/app/data
RUN useradd --create-home journeys && mkdir -p /app/data && chown journeys /app/data
USER journeys
CMD ["journeys", "worker"]
