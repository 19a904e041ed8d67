"""gunicorn settings for production (docs/operations.md):

    gunicorn -c gunicorn.conf.py 'app:create_app()'

Every value can be changed from the environment, so the same file serves every host: PORT (8000)
and HOST (127.0.0.1: behind the reverse proxy on the same host; 0.0.0.0 in a container),
WEB_CONCURRENCY (workers; default 2 x CPUs + 1), GUNICORN_TIMEOUT (30 s).
"""
import multiprocessing
import os

_host, _port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
bind = os.environ.get("GUNICORN_BIND") or f"{_host}:{_port}"

# Sync workers: a request is a few milliseconds of database work; the app keeps one database
# connection per worker process (its main thread) and reuses it request after request.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (bounded memory), not all at once.
max_requests = 5000
max_requests_jitter = 500

# Logs on standard output/error, collected by the service manager (journald, docker logs).
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Client address as the app sees it (after ProxyFix with TRUSTED_PROXIES), time in microseconds.
access_log_format = '%(h)s %({x-forwarded-for}i)s %(t)s "%(r)s" %(s)s %(b)s %(D)sus "%(a)s"'

# The reverse proxy terminates TLS; the app trusts X-Forwarded-* only through TRUSTED_PROXIES.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
