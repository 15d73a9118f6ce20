# A small image running one emulated module. The build steps are the README's: install the
# project into a virtual environment with pip.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY emulator ./emulator
COPY profiles ./profiles
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -e .
ENV PATH="/app/.venv/bin:$PATH"
ENTRYPOINT ["ecemu"]
CMD ["run", "--link", "/run/ecemu/modem"]
