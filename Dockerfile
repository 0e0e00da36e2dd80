# One image for every role: the target stack, the Locust master (the runner) and Locust workers.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY target_app target_app
COPY locustfiles locustfiles
COPY routebench routebench
COPY analysis analysis
COPY experiments experiments
# Editable, so the code runs from /app beside experiments/ and the report templates it reads.
RUN pip install --no-cache-dir -c constraints.txt -e .
ENTRYPOINT []
CMD ["routebench", "--help"]
