# A small image running one emulated module, its port served over TCP as RFC 2217 on port 5000:
#     docker build -t ecemu .  &&  docker run -p 5000:5000 ecemu
#     python -m serial.tools.miniterm rfc2217://localhost:5000
# The build steps are scripts/_venv.sh's: the project installed into a virtual environment with pip.
FROM python:3.11-slim
WORKDIR /app
# What the package needs: its metadata, its code and the profiles (module and scenario files),
# which it reads next to itself at run time.
COPY pyproject.toml README.md ./
COPY emulator ./emulator
COPY profiles ./profiles
RUN python -m venv .venv && .venv/bin/python -m pip install --no-cache-dir --quiet -e .
ENV PATH="/app/.venv/bin:$PATH"
EXPOSE 5000
ENTRYPOINT ["ecemu"]
CMD ["run", "--tcp", "0.0.0.0:5000"]
