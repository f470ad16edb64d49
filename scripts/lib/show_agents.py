"""Prints the agents a collector knows (GET /api/v1/agents), one line each.
Usage: show_agents.py http://HOST:PORT"""
import json
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1] + "/api/v1/agents", timeout=10) as r:
    agents = json.load(r)["agents"]
for a in agents:
    c = a["counters"]
    print(f"    {a['id']}: {a['state']} since {a['state_since']}; {c['alerts']} alerts, "
          f"{c['packets']} packets, queue {c['queue_depth']}; rule pack {a['rule_pack'] or '-'}")
if not agents:
    print("    (none)")
