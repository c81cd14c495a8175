"""No gloo thread outlives the process group (a surviving one can abort the process at exit)."""

from __future__ import annotations

import json
import subprocess
import sys

from dist_helpers import subprocess_env

# Join a one-process gloo group after importing mtlkit (as `mtlkit train` does), build a trainer
# (its optimizer imports torch._dynamo, which captures group.WORLD unless mtlkit imported
# torch.distributed.nn.functional first), leave the group as at exit, list the live threads.
SCRIPT = """
import gc, json, os, time
from datetime import timedelta
import torch.distributed as dist
from mtlkit.distributed import env
from mtlkit.models import make_model
from mtlkit.models.encoders import MLP
from mtlkit.tasks import Task
from mtlkit.training import Trainer

def gloo_threads():
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{task}/comm").read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return [name for name in names if "gloo" in name]

def wait_for(condition):  # threads name themselves and stop asynchronously
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)

dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1,
                        timeout=timedelta(seconds=30))
wait_for(gloo_threads)
during = gloo_threads()
tasks = [Task("a", "regression")]
Trainer(make_model("hps", lambda: MLP(3, hidden=(4,)), tasks), tasks)
env._destroy()
gc.collect()
wait_for(lambda: not gloo_threads())
print(json.dumps({"during": during, "after": gloo_threads()}))
"""


def test_no_gloo_thread_survives_teardown_after_a_trainer_was_built():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = json.loads(proc.stdout.splitlines()[-1])
    assert threads["during"]  # the probe sees gloo's threads while the group exists
    assert not threads["after"], threads["after"]
