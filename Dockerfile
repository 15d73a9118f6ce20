# A small image running emulated modules, each port served over TCP as RFC 2217 (port 5000, then
# 5001 ... with --count):
#     docker build -t ecemu .  &&  docker run -p 5000:5000 ecemu
#     python -m serial.tools.miniterm rfc2217://localhost:5000
# Faults from outside: docker exec <container> ecemu ctl status (the control socket is at a fixed
# path, ECEMU_CONTROL, which `ecemu run` and `ecemu ctl` both read). compose.yaml runs a fleet.

# The wheel is built in a stage of its own: the image gets an ordinary (not editable) install
# and none of the sources.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY emulator ./emulator
COPY profiles ./profiles
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN python -m venv /opt/ecemu \
    && /opt/ecemu/bin/python -m pip install --no-cache-dir --quiet /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --create-home --uid 1000 ecemu \
    && mkdir -p /run/ecemu && chown ecemu /run/ecemu
ENV PATH="/opt/ecemu/bin:$PATH" \
    ECEMU_CONTROL=/run/ecemu/control.sock \
    PYTHONUNBUFFERED=1
USER ecemu
WORKDIR /home/ecemu
EXPOSE 5000
# Healthy while the module answers on its control socket (the one ECEMU_CONTROL names; a fleet
# with --count names its own, see compose.yaml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["ecemu", "ctl", "status"]
ENTRYPOINT ["ecemu"]
CMD ["run", "--tcp", "0.0.0.0:5000"]
