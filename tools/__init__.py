"""Development tools shared by tests, benchmarks and scripts: real processes (redis-server,
uvicorn), the HTTP load generator and the Markdown report sections. Not part of the service."""
