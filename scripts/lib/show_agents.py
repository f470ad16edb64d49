"""Prints the agents a collector knows (GET /api/v1/agents), one line each.
Usage: SENNINGEN_TOKEN=snt_... show_agents.py http://HOST:PORT"""
import json
import os
import sys
import urllib.request

token = os.environ.get("SENNINGEN_TOKEN", "")
request = urllib.request.Request(sys.argv[1] + "/api/v1/agents",
                                 headers={"Authorization": "Bearer " + token} if token else {})
with urllib.request.urlopen(request, timeout=10) as r:
    agents = json.load(r)["agents"]
for a in agents:
    c = a["counters"]
    print(f"    {a['id']}: {a['state']} since {a['state_since']}; {c['alerts']} alerts, "
          f"{c['packets']} packets, queue {c['queue_depth']}; rule pack {a['rule_pack'] or '-'}")
if not agents:
    print("    (none)")
