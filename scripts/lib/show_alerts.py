#!/usr/bin/python3
"""Prints the alerts a collector's REST API returns, for a person to read.
  SENNINGEN_TOKEN=snt_... show_alerts.py http://127.0.0.1:8080 [--limit N]
(the token from 'senningen-collector user token NAME')
"""
import json
import os
import sys
import urllib.request


def get(url):
    token = os.environ.get("SENNINGEN_TOKEN", "")
    headers = {"Authorization": "Bearer " + token} if token else {}
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)

SEVERITY = {1: ("critical", "\033[1;97;41m"), 2: ("high", "\033[1;31m"),
            3: ("medium", "\033[33m"), 4: ("low", "\033[36m")}


def main():
    base = sys.argv[1].rstrip("/")
    limit = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--limit" else "100"
    colour = sys.stdout.isatty()
    with get(f"{base}/api/v1/health") as r:
        health = json.load(r)
    with get(f"{base}/api/v1/alerts?limit={limit}") as r:
        alerts = json.load(r)["alerts"]
    print(f"Collector {base}: {health.get('status')}, {health.get('alerts')} alerts stored "
          f"({health.get('backend')}).  GET {base}/api/v1/alerts returned {len(alerts)}, newest first:\n")
    for a in alerts:
        sev = a["alert"]["severity"]
        name, code = SEVERITY.get(sev, (str(sev), ""))
        label = f"{sev} {name:<8}"
        if colour:
            label = f"{code}{label}\033[0m"
        print(f"{a['timestamp'][:23]}Z  {label}  {a['alert']['signature']}")
        if "src_ip" in a:
            app = f" {a['app_proto']}" if a.get("app_proto") else ""
            print(f"    {a['proto']}{app}  {a['src_ip']}:{a['src_port']} -> "
                  f"{a['dest_ip']}:{a['dest_port']}   flow {a['flow_id']}")
        print(f"    {a['alert']['category']} · source {a['alert']['source']} · pack "
              f"{a['alert']['pack']} · agent {a['agent']['id']} · id {a['alert']['id']}")
        if "intel" in a:
            i = a["intel"]
            print(f"    intel: {i['indicator']} ({i['indicator_type']}) seen at {i['where']}, "
                  f"from {', '.join(i['sources']) or 'unknown source'}")
        for m in a.get("matches", [])[:4]:
            print(f"    matched {m['identifier']} at offset {m['offset']}: {m['data'][:60]}")
        print()


if __name__ == "__main__":
    main()
