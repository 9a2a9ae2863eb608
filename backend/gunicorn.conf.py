"""gunicorn settings for production: `gunicorn -c backend/gunicorn.conf.py 'backend:create_app()'`.

No preload: each worker builds the app, and so loads the models, after the fork (PyTorch state and its thread
pools do not survive a fork well). Each worker runs its requests on a few threads and gives torch one intra-op
thread, so the workers together use the machine's cores without oversubscribing them.
"""
import logging
import multiprocessing
import os

bind = os.environ.get("DETECTOR_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("DETECTOR_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("DETECTOR_THREADS", 4))
preload_app = False
timeout = 60
graceful_timeout = 20
max_requests = 0  # memory is flat (tested), so workers need no periodic recycling
raw_env = [f"DETECTOR_TORCH_THREADS={os.environ.get('DETECTOR_TORCH_THREADS', '1')}"]
accesslog = os.environ.get("DETECTOR_ACCESS_LOG")  # unset: no access log, which costs time on every request


def worker_exit(server, worker):
    """Runs in the worker once it has stopped serving: end the process without the interpreter's teardown.

    Unloading torch's libraries at interpreter exit took 7-16 s on this project's machine, which held up every
    graceful restart and deploy by as long. The worker has finished its requests by now; logs are flushed first.
    """
    logging.shutdown()
    os._exit(0)
