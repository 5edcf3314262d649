"""hpx.counters() in a real job: what the script did shows in its counters,
and every locality's traffic to another equals what that one received."""

import json

COUNTED = r"""
import json
import hpxpy as hpx
from _jobkit import equal, done

me, n = hpx.get_locality_id(), hpx.get_num_localities()
before = hpx.counters()
a = hpx.full((3000,), 1.0, distribution="block")
for _ in range(4):
    equal("all_reduce", hpx.all_reduce(float(me), op="sum"), float(sum(range(n))))
hpx.barrier()
after = hpx.counters()
equal("locality", after["locality"], me)
waits = {w["operation"]: w["wait"]["count"] for w in after["collectives"]}
old = {w["operation"]: w["wait"]["count"] for w in before["collectives"]}
equal("all_reduces counted", waits.get("all_reduce", 0) - old.get("all_reduce", 0) >= 4, True)
equal("barrier counted", waits.get("barrier", 0) - old.get("barrier", 0) >= 1, True)
equal("partition bytes", after["partition_bytes"] - before["partition_bytes"], 1000 * 8)
print("TRAFFIC", json.dumps({p["locality"]: p["traffic"] for p in after["peers"]}))
del a
hpx.barrier()
done("counters")
"""


def test_counters_count_what_the_script_did(run_job):
    result = run_job(3, COUNTED).assert_done("counters")
    sent = {}
    for me in range(3):
        line = next(l for l in result.lines(me) if l.startswith("TRAFFIC "))
        sent[me] = {int(k): v for k, v in json.loads(line[len("TRAFFIC "):]).items()}
    for me in range(3):
        for other in range(3):
            if other != me:
                assert sent[me][other]["parcels_sent"] > 0, result.describe()
